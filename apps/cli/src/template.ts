// The subset of Go's text/template that `--format` strings use: {{.Field}} (nested, and
// methods such as {{.Label "k"}}), {{json .}}, pipes, {{if}}/{{else if}}/{{else}}, {{range}},
// {{with}}, trim markers ({{- -}}), and Docker's functions (json, join, split, lower, upper,
// title, truncate, pad, index, len, print, printf, println, eq/ne/lt/le/gt/ge, and/or/not).
// Errors read as Go's: `template: :1:2: executing "" at <.Foo>: can't evaluate field Foo`.

export class TemplateError extends Error {}

type Node =
  | { kind: 'text'; text: string }
  | { kind: 'action'; pipe: Pipe }
  | { kind: 'if' | 'with'; pipe: Pipe; body: Node[]; else: Node[] }
  | { kind: 'range'; pipe: Pipe; body: Node[]; else: Node[] };

type Operand =
  | { kind: 'field'; path: string[]; src: string; pos: number; base?: Operand }
  | { kind: 'dot'; pos: number }
  | { kind: 'root'; pos: number }
  | { kind: 'lit'; value: unknown }
  | { kind: 'ident'; name: string; pos: number }
  | { kind: 'sub'; pipe: Pipe };
type Command = Operand[];
type Pipe = Command[];

interface Pos {
  line: number;
  col: number;
}

/** A parsed template; `execute(data)` renders it. */
export class Template {
  private constructor(
    private readonly nodes: Node[],
    private readonly positions: (offset: number) => Pos,
  ) {}

  static parse(src: string): Template {
    const lineStarts = [0];
    for (let i = 0; i < src.length; i++) if (src[i] === '\n') lineStarts.push(i + 1);
    const positions = (offset: number): Pos => {
      let line = 0;
      while (line + 1 < lineStarts.length && lineStarts[line + 1] <= offset) line++;
      return { line: line + 1, col: offset - lineStarts[line] };
    };
    const parser = new Parser(src, positions);
    const nodes = parser.list(new Set());
    if (parser.stopWord) throw parser.fail(`unexpected {{${parser.stopWord}}}`);
    return new Template(nodes, positions);
  }

  execute(data: unknown): string {
    return new Executor(data, this.positions).run(this.nodes, data);
  }
}

type Token = { t: string; pos: number };

class Parser {
  private i = 0;
  stopWord = '';
  private trimNext = false;

  constructor(
    private readonly src: string,
    private readonly positions: (o: number) => Pos,
  ) {}

  fail(msg: string, at = this.i): TemplateError {
    return new TemplateError(`template: :${this.positions(at).line}: ${msg}`);
  }

  /** Nodes up to one of `stops` ({{end}}, {{else}}): the stop word is left in stopWord. */
  list(stops: Set<string>): Node[] {
    const out: Node[] = [];
    this.stopWord = '';
    while (this.i < this.src.length) {
      const open = this.src.indexOf('{{', this.i);
      let text = this.src.slice(this.i, open < 0 ? undefined : open);
      if (this.trimNext) text = text.replace(/^\s+/, '');
      this.trimNext = false;
      if (open < 0) {
        if (text) out.push({ kind: 'text', text });
        this.i = this.src.length;
        break;
      }
      let start = open + 2;
      if (this.src[start] === '-' && /\s/.test(this.src[start + 1] ?? '')) {
        text = text.replace(/\s+$/, '');
        start += 2;
      }
      if (text) out.push({ kind: 'text', text });
      const close = this.src.indexOf('}}', start);
      if (close < 0) throw this.fail('unclosed action', open);
      let end = close;
      if (this.src[close - 1] === '-' && /\s/.test(this.src[close - 2] ?? '')) {
        end = close - 2;
        this.trimNext = true;
      }
      this.i = close + 2;
      const body = this.src.slice(start, end);
      if (/^\s*\/\*[\s\S]*\*\/\s*$/.test(body)) continue; // a comment
      const tokens = tokenize(body, start, (m, at) => this.fail(m, at));
      if (!tokens.length) throw this.fail('missing value for command', start);
      const word = tokens[0].t;
      if (word === 'end' || word === 'else') {
        if (!stops.has(word)) throw this.fail(`unexpected {{${word}}}`, start);
        this.stopWord = word;
        this.elseTokens = tokens.slice(1);
        return out;
      }
      if (word === 'if' || word === 'with' || word === 'range') {
        out.push(this.block(word, this.pipe(tokens.slice(1), start)));
        continue;
      }
      out.push({ kind: 'action', pipe: this.pipe(tokens, start) });
    }
    if (stops.size) throw this.fail('unexpected EOF');
    return out;
  }

  private elseTokens: Token[] = [];

  private block(word: 'if' | 'with' | 'range', pipe: Pipe): Node {
    const body = this.list(new Set(['end', 'else']));
    let alt: Node[] = [];
    if (this.stopWord === 'else') {
      const rest = this.elseTokens;
      if (rest.length && (rest[0].t === 'if' || rest[0].t === 'with')) {
        // {{else if X}}: a nested block that shares this block's {{end}}.
        alt = [this.block(rest[0].t as 'if' | 'with', this.pipe(rest.slice(1), rest[0].pos))];
        this.stopWord = 'end';
      } else {
        alt = this.list(new Set(['end']));
      }
    }
    this.stopWord = '';
    return word === 'range'
      ? { kind: 'range', pipe, body, else: alt }
      : { kind: word, pipe, body, else: alt };
  }

  pipe(tokens: Token[], at: number): Pipe {
    if (!tokens.length) throw this.fail('missing value for command', at);
    const cmds: Command[] = [[]];
    for (let k = 0; k < tokens.length; k++) {
      const tok = tokens[k];
      if (tok.t === '|') {
        if (!cmds[cmds.length - 1].length) throw this.fail('missing command before |', tok.pos);
        cmds.push([]);
        continue;
      }
      if (tok.t === '(') {
        let depth = 1;
        let j = k + 1;
        for (; j < tokens.length && depth; j++) {
          if (tokens[j].t === '(') depth++;
          if (tokens[j].t === ')') depth--;
        }
        if (depth) throw this.fail('unclosed left paren', tok.pos);
        const inner: Operand = { kind: 'sub', pipe: this.pipe(tokens.slice(k + 1, j - 1), tok.pos) };
        const next = tokens[j];
        if (next?.t.startsWith('.') && next.t.length > 1 && next.pos === tokens[j - 1].pos + 1) {
          cmds[cmds.length - 1].push({ ...fieldOf(next), base: inner } as Operand);
          k = j;
        } else {
          cmds[cmds.length - 1].push(inner);
          k = j - 1;
        }
        continue;
      }
      if (tok.t === ')') throw this.fail('unexpected right paren', tok.pos);
      cmds[cmds.length - 1].push(operand(tok));
    }
    if (!cmds[cmds.length - 1].length) throw this.fail('missing command after |', at);
    return cmds;
  }
}

function fieldOf(tok: Token): Operand {
  return { kind: 'field', path: tok.t.slice(1).split('.'), src: tok.t, pos: tok.pos };
}

function operand(tok: Token): Operand {
  const t = tok.t;
  if (t === '.') return { kind: 'dot', pos: tok.pos };
  if (t === '$') return { kind: 'root', pos: tok.pos };
  if (t.startsWith('$.'))
    return {
      kind: 'field',
      path: t.slice(2).split('.'),
      src: t,
      pos: tok.pos,
      base: { kind: 'root', pos: tok.pos },
    };
  if (t.startsWith('.')) return fieldOf(tok);
  if (t.startsWith('"')) return { kind: 'lit', value: JSON.parse(t) };
  if (t.startsWith('`')) return { kind: 'lit', value: t.slice(1, -1) };
  if (t === 'true' || t === 'false') return { kind: 'lit', value: t === 'true' };
  if (t === 'nil') return { kind: 'lit', value: null };
  if (/^-?\d+(\.\d+)?$/.test(t)) return { kind: 'lit', value: Number(t) };
  return { kind: 'ident', name: t, pos: tok.pos };
}

function tokenize(body: string, base: number, fail: (m: string, at: number) => Error): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < body.length) {
    const ch = body[i];
    if (/\s/.test(ch)) {
      i++;
      continue;
    }
    const start = i;
    if (ch === '"') {
      i++;
      while (i < body.length && body[i] !== '"') i += body[i] === '\\' ? 2 : 1;
      if (i >= body.length) throw fail('unterminated quoted string', base + start);
      i++;
    } else if (ch === '`') {
      i = body.indexOf('`', i + 1);
      if (i < 0) throw fail('unterminated raw quoted string', base + start);
      i++;
    } else if (ch === '(' || ch === ')' || ch === '|') i++;
    else while (i < body.length && !/[\s()|"`]/.test(body[i])) i++;
    out.push({ t: body.slice(start, i), pos: base + start });
  }
  return out;
}

class Executor {
  constructor(
    private readonly root: unknown,
    private readonly positions: (o: number) => Pos,
  ) {}

  run(nodes: Node[], dot: unknown): string {
    let out = '';
    for (const n of nodes) {
      if (n.kind === 'text') out += n.text;
      else if (n.kind === 'action') out += printValue(this.pipe(n.pipe, dot));
      else if (n.kind === 'if' || n.kind === 'with') {
        const v = this.pipe(n.pipe, dot);
        if (truthy(v)) out += this.run(n.body, n.kind === 'with' ? v : dot);
        else out += this.run(n.else, dot);
      } else if (n.kind === 'range') {
        const v = this.pipe(n.pipe, dot);
        const items = Array.isArray(v)
          ? v
          : v && typeof v === 'object'
            ? Object.keys(v)
                .sort()
                .map((k) => (v as Record<string, unknown>)[k])
            : [];
        if (!items.length) out += this.run(n.else, dot);
        for (const item of items) out += this.run(n.body, item);
      }
    }
    return out;
  }

  private pipe(p: Pipe, dot: unknown): unknown {
    let value: unknown;
    p.forEach((cmd, i) => {
      value = this.command(cmd, dot, i === 0 ? undefined : { value });
    });
    return value;
  }

  private command(cmd: Command, dot: unknown, piped?: { value: unknown }): unknown {
    const [head, ...rest] = cmd;
    const args = () => [...rest.map((a) => this.operand(a, dot)), ...(piped ? [piped.value] : [])];
    if (head.kind === 'ident') {
      const fn = FUNCS[head.name];
      if (!fn)
        throw new TemplateError(
          `template: :${this.positions(head.pos).line}: function "${head.name}" not defined`,
        );
      return fn(...args());
    }
    if (head.kind === 'field' && (rest.length || piped)) {
      const method = this.operand(head, dot, true);
      if (typeof method !== 'function')
        throw this.execError(head, `${head.path.at(-1)} is not a method but has arguments`);
      return method(...args());
    }
    if (rest.length || piped) throw new TemplateError(`template: : can't give argument to non-function`);
    return this.operand(head, dot);
  }

  private operand(o: Operand, dot: unknown, asMethod = false): unknown {
    switch (o.kind) {
      case 'dot':
        return dot;
      case 'root':
        return this.root;
      case 'lit':
        return o.value;
      case 'sub':
        return this.pipe(o.pipe, dot);
      case 'ident': {
        const fn = FUNCS[o.name];
        if (!fn)
          throw new TemplateError(
            `template: :${this.positions(o.pos).line}: function "${o.name}" not defined`,
          );
        return fn();
      }
      case 'field': {
        let v = o.base ? this.operand(o.base, dot) : dot;
        o.path.forEach((name, i) => {
          const found = lookup(v, name);
          if (!found) throw this.execError(o, `can't evaluate field ${name}`);
          v = found.value;
          const last = i === o.path.length - 1;
          if (typeof v === 'function' && !(last && asMethod)) v = (v as () => unknown)();
        });
        return v;
      }
    }
  }

  private execError(o: { src: string; pos: number }, msg: string): TemplateError {
    const { line, col } = this.positions(o.pos);
    return new TemplateError(`template: :${line}:${col}: executing "" at <${o.src}>: ${msg}`);
  }
}

/**
 * A field of a value: the exact name, else the name with a lower-case first letter, else any
 * case (so `.State.Pid` reads corral's `state.pid`). Methods (functions) are found too.
 */
function lookup(v: unknown, name: string): { value: unknown } | null {
  if (v === null || v === undefined || typeof v !== 'object') return null;
  const o = v as Record<string, unknown>;
  if (name in o) return { value: bind(o, o[name]) };
  const lower = name[0].toLowerCase() + name.slice(1);
  if (lower in o) return { value: bind(o, o[lower]) };
  const any = Object.keys(o).find((k) => k.toLowerCase() === name.toLowerCase());
  return any === undefined ? null : { value: bind(o, o[any]) };
}

const bind = (o: object, v: unknown) => (typeof v === 'function' ? v.bind(o) : v);

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === 'object') return Object.keys(v).length > 0;
  return Boolean(v);
}

/** A value as Go's fmt prints it: slices `[a b]`, maps `map[k:v]`, nil `<no value>`. */
export function printValue(v: unknown): string {
  if (v === undefined || v === null) return '<no value>';
  if (typeof v === 'string') return v;
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return `[${v.map(printValue).join(' ')}]`;
  if (typeof v === 'object') {
    const keys = Object.keys(v).sort();
    return `map[${keys.map((k) => `${k}:${printValue((v as Record<string, unknown>)[k])}`).join(' ')}]`;
  }
  return String(v);
}

const str = (v: unknown) => (typeof v === 'string' ? v : printValue(v));

function sprintf(format: string, ...args: unknown[]): string {
  let n = 0;
  return format.replace(/%([-+ 0#]*\d*(?:\.\d+)?)([svdqtfx%])/g, (_m, flags: string, verb: string) => {
    if (verb === '%') return '%';
    const a = args[n++];
    let s: string;
    if (verb === 'q') s = JSON.stringify(str(a));
    else if (verb === 'd') s = String(Math.trunc(Number(a)));
    else if (verb === 'f') s = Number(a).toFixed(Number(flags.split('.')[1] ?? 6));
    else if (verb === 'x') s = typeof a === 'number' ? a.toString(16) : Buffer.from(str(a)).toString('hex');
    else s = str(a);
    const width = Number(flags.replace(/^[-+ 0#]*/, '').split('.')[0] || 0);
    return flags.startsWith('-') ? s.padEnd(width) : s.padStart(width);
  });
}

function compare(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  return str(a) < str(b) ? -1 : str(a) > str(b) ? 1 : 0;
}

/** Go's print: operands joined, with a space between two that are not strings. */
function goPrint(args: unknown[]): string {
  let out = '';
  args.forEach((a, i) => {
    if (i > 0 && typeof a !== 'string' && typeof args[i - 1] !== 'string') out += ' ';
    out += str(a);
  });
  return out;
}

// biome-ignore lint/suspicious/noExplicitAny: a template function takes whatever the template passes
const FUNCS: Record<string, (...a: any[]) => unknown> = {
  json: (v: unknown) => JSON.stringify(v ?? null),
  join: (list: unknown, sep: string) => (Array.isArray(list) ? list.map(str).join(sep) : str(list)),
  split: (s: string, sep: string) => str(s).split(sep),
  lower: (s: unknown) => str(s).toLowerCase(),
  upper: (s: unknown) => str(s).toUpperCase(),
  title: (s: unknown) => str(s).replace(/\b\w/g, (c) => c.toUpperCase()),
  truncate: (s: unknown, n: number) => [...str(s)].slice(0, n).join(''),
  pad: (s: unknown, before: number, after: number) => ' '.repeat(before) + str(s) + ' '.repeat(after),
  len: (v: unknown) =>
    Array.isArray(v) || typeof v === 'string'
      ? v.length
      : v && typeof v === 'object'
        ? Object.keys(v).length
        : 0,
  index: (v: unknown, ...keys: unknown[]) => {
    let cur = v;
    for (const k of keys) {
      if (cur === null || cur === undefined) return undefined;
      cur = (cur as Record<string, unknown>)[String(k)];
      if (cur === undefined)
        return Array.isArray(v)
          ? (() => {
              throw new TemplateError(`template: : error calling index: index out of range: ${k}`);
            })()
          : '';
    }
    return cur;
  },
  print: (...a: unknown[]) => goPrint(a),
  println: (...a: unknown[]) => `${a.map(str).join(' ')}\n`,
  printf: (f: string, ...a: unknown[]) => sprintf(f, ...a),
  eq: (a: unknown, ...b: unknown[]) => b.some((x) => compare(a, x) === 0),
  ne: (a: unknown, b: unknown) => compare(a, b) !== 0,
  lt: (a: unknown, b: unknown) => compare(a, b) < 0,
  le: (a: unknown, b: unknown) => compare(a, b) <= 0,
  gt: (a: unknown, b: unknown) => compare(a, b) > 0,
  ge: (a: unknown, b: unknown) => compare(a, b) >= 0,
  not: (a: unknown) => !truthy(a),
  and: (...a: unknown[]) => a.find((x) => !truthy(x)) ?? a.at(-1),
  or: (...a: unknown[]) => a.find((x) => truthy(x)) ?? a.at(-1),
};
