// `corral version` (and `--version`) and `corral info`, as `docker version` and `docker info`
// print them; the data comes from the engine (corrald's /version and /info use the same).
import { readFileSync } from 'node:fs';
import { type EngineInfo, type EngineVersion, engineVersion, formatBytes } from '@corral/engine';
import { type Command, UsageError } from '../args.js';
import { println } from '../print.js';
import { engine, remoteEngine, str } from './common.js';

/** This CLI's version, from its package.json. */
export function clientVersion(): string {
  try {
    return JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')).version;
  } catch {
    return 'unknown';
  }
}

const cgroup = (v: EngineVersion) =>
  v.cgroupMode === 'hybrid' ? `${v.cgroupVersion} (hybrid)` : v.cgroupVersion || 'none';

/** Label-value lines, values aligned as docker version aligns them. */
const rows = (indent: string, pairs: [string, string][]) =>
  pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(19 - indent.length)}${v}`);

/** `corral --version`: one line. */
export function versionLine(): string {
  const v = engineVersion();
  return `corral version ${clientVersion()}, API ${v.apiVersion}, Node ${v.node}, kernel ${v.kernelVersion}, cgroup v${cgroup(v)}, storage driver ${v.storageDriver}`;
}

export const version: Command = {
  name: 'version',
  usage: 'version [OPTIONS]',
  description: 'Show the corral version information',
  args: { min: 0, max: 0 },
  flags: [
    { name: 'format', short: 'f', type: 'string', value: 'json', description: "'json': print as JSON" },
  ],
  async run(a, ctx) {
    // engineVersion, not Engine.version: the class would bring the whole engine into the
    // version bundle (issue 15).
    const local = engineVersion();
    // With --host the server half is corrald's.
    const v = ctx.host ? await (await remoteEngine(ctx.host, ctx)).version() : local;
    const client = {
      version: clientVersion(),
      apiVersion: local.apiVersion,
      node: local.node,
      os: local.os,
      arch: local.arch,
    };
    const format = str(a, 'format');
    if (format !== undefined) {
      if (format !== 'json') throw new UsageError(`unknown format ${format}: only json`);
      println(JSON.stringify({ client, server: v }));
      return 0;
    }
    const lines = [
      'Client:',
      ...rows(' ', [
        ['Version', client.version],
        ['API version', client.apiVersion],
        ['Node version', client.node],
        ['OS/Arch', `${client.os}/${client.arch}`],
        ['Context', ctx.host ?? 'daemonless'],
      ]),
      '',
      ctx.host ? `Server: corrald at ${ctx.host}` : 'Server: corral engine (in this process)',
      ' Engine:',
      ...rows('  ', [
        ['Version', v.version],
        ['API version', `${v.apiVersion} (minimum version ${v.minApiVersion})`],
        ['Node version', v.node],
        ['OS/Arch', `${v.os}/${v.arch}`],
        ['Kernel version', v.kernelVersion],
        ['Cgroup version', cgroup(v)],
        ['Cgroup driver', v.cgroupDriver],
        ['Storage driver', v.storageDriver],
      ]),
      ` ${v.runtime}:`,
      ...rows('  ', [['Version', v.version]]),
    ];
    println(lines.join('\n'));
    return 0;
  },
};

function infoText(i: EngineInfo, context: string): string {
  const lines = [
    'Client:',
    ` Version:    ${clientVersion()}`,
    ` Context:    ${context}`,
    '',
    'Server:',
    ` Containers: ${i.containers}`,
    `  Running: ${i.containersRunning}`,
    `  Paused: ${i.containersPaused}`,
    `  Stopped: ${i.containersStopped}`,
    ` Images: ${i.images}`,
    ` Server Version: ${i.version}`,
    ` Storage Driver: ${i.storageDriver}`,
    `  Also available: ${i.storageDrivers.filter((d) => d !== i.storageDriver).join(', ')}`,
    ' Logging Driver: json-file',
    ` Cgroup Driver: ${i.cgroupDriver}`,
    ` Cgroup Version: ${cgroup(i)}`,
    ` Runtimes: ${i.runtimes.join(' ')}`,
    ` Default Runtime: ${i.defaultRuntime}`,
    ` Kernel Version: ${i.kernelVersion}`,
    ' OSType: linux',
    ` Architecture: ${i.architecture}`,
    ` Node Version: ${i.node}`,
    ` CPUs: ${i.ncpu}`,
    ` Total Memory: ${formatBytes(i.memTotal)}`,
    ` Name: ${i.name}`,
    ` Data Root: ${i.dataRoot}`,
    ` API Version: ${i.apiVersion} (minimum version ${i.minApiVersion})`,
  ];
  for (const w of i.warnings) lines.push(`WARNING: ${w}`);
  return lines.join('\n');
}

const info: Command = {
  name: 'info',
  usage: 'info [OPTIONS]',
  description: 'Display system-wide information',
  args: { min: 0, max: 0 },
  flags: [
    { name: 'format', short: 'f', type: 'string', value: 'json', description: "'json': print as JSON" },
  ],
  async run(a, ctx) {
    const format = str(a, 'format');
    if (format !== undefined && format !== 'json')
      throw new UsageError(`unknown format ${format}: only json`);
    const i = await (await engine(ctx)).info();
    console.log(format === 'json' ? JSON.stringify(i) : infoText(i, ctx.host ?? 'daemonless'));
    return 0;
  },
};

export const aboutCommands: Command[] = [version, info];
