/** dockerd's --log-level: debug, info, warn, error, fatal; lines to stderr. */
export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'fatal';
const ORDER: LogLevel[] = ['debug', 'info', 'warn', 'error', 'fatal'];

export interface Logger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export function isLogLevel(v: string): v is LogLevel {
  return (ORDER as string[]).includes(v);
}

export function createLogger(
  level: LogLevel,
  out: (line: string) => void = (l) => process.stderr.write(l),
): Logger {
  const at = ORDER.indexOf(level);
  const line = (l: LogLevel) => (msg: string) => {
    if (ORDER.indexOf(l) >= at)
      out(`time="${new Date().toISOString()}" level=${l} msg=${JSON.stringify(msg)}\n`);
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}
