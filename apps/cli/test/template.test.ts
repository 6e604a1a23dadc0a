import { describe, expect, it } from 'vitest';
import { Template, TemplateError } from '../src/template.js';
import { HEADERS, psRow, renderOne, renderRows, tabwrite } from '../src/templated.js';

// The Go-template subset of --format, checked against what Go's text/template and docker print
// for the same strings (the expected strings were produced with docker 28 where docker has them).
const run = (src: string, data: unknown) => Template.parse(src).execute(data);

const ctr = {
  Id: 'abc',
  Name: '/web',
  State: { Pid: 42, Status: 'running', Running: true },
  Config: { Cmd: ['sh', '-c', 'x'], Labels: { app: 'db', tier: 'back' }, Env: [] as string[] },
  Mounts: [{ Source: '/a' }, { Source: '/b' }],
};

describe('templates', () => {
  it('reads fields, nested fields, and corral records case-insensitively', () => {
    expect(run('{{.Id}} {{.State.Pid}} {{.State.Status}}', ctr)).toBe('abc 42 running');
    expect(run('{{.State.Pid}}', { state: { pid: 7 } })).toBe('7');
    expect(run('{{.ID}}', { id: 'x' })).toBe('x');
  });

  it('prints values as Go does: slices, maps, nil', () => {
    expect(run('{{.Config.Cmd}}', ctr)).toBe('[sh -c x]');
    expect(run('{{.Config.Labels}}', ctr)).toBe('map[app:db tier:back]');
    expect(run('{{.X}}', { X: null })).toBe('<no value>');
  });

  it('json of the whole value and of one field', () => {
    expect(run('{{json .State}}', ctr)).toBe('{"Pid":42,"Status":"running","Running":true}');
    expect(JSON.parse(run('{{json .}}', ctr))).toEqual(ctr);
    expect(run('{{json .Config.Env}}', ctr)).toBe('[]');
  });

  it('range, with else, over lists and maps', () => {
    expect(run('{{range .Mounts}}{{.Source}} {{end}}', ctr)).toBe('/a /b ');
    expect(run('{{range .Config.Env}}x{{else}}none{{end}}', ctr)).toBe('none');
    expect(run('{{range .Config.Labels}}[{{.}}]{{end}}', ctr)).toBe('[db][back]');
    expect(run('{{range $.Mounts}}{{$.Id}}{{end}}', ctr)).toBe('abcabc');
  });

  it('if / else if / else, with, and comparisons', () => {
    expect(run('{{if .State.Running}}up{{else}}down{{end}}', ctr)).toBe('up');
    expect(
      run('{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{else}}?{{end}}', ctr),
    ).toBe('r');
    expect(run('{{if and .State.Running (gt .State.Pid 10)}}big{{end}}', ctr)).toBe('big');
    expect(run('{{if not .Config.Env}}empty{{end}}', ctr)).toBe('empty');
    expect(run('{{with .State}}{{.Pid}}{{end}}', ctr)).toBe('42');
  });

  it('index, join, split, lower, upper, len, printf, println, pipes and trim markers', () => {
    expect(run('{{index .Config.Labels "app"}}', ctr)).toBe('db');
    expect(run('{{index .Config.Cmd 1}}', ctr)).toBe('-c');
    expect(run('{{join .Config.Cmd ","}}', ctr)).toBe('sh,-c,x');
    expect(run('{{split "a:b" ":"}}', ctr)).toBe('[a b]');
    expect(run('{{lower "AbC"}}{{upper .State.Status}}', ctr)).toBe('abcRUNNING');
    expect(run('{{len .Mounts}}', ctr)).toBe('2');
    expect(run('{{printf "%s=%d" .Name .State.Pid}}', ctr)).toBe('/web=42');
    expect(run('{{println .Id .State.Pid}}', ctr)).toBe('abc 42\n');
    expect(run('{{.State.Status | upper}}', ctr)).toBe('RUNNING');
    expect(run('a  {{- " b " -}}  c', ctr)).toBe('a b c');
    expect(run('{{/* a comment */}}ok', ctr)).toBe('ok');
  });

  it("fails an unknown field with Go's message and position", () => {
    expect(() => run('{{.Foo}}', ctr)).toThrow(
      'template: :1:2: executing "" at <.Foo>: can\'t evaluate field Foo',
    );
    expect(() => run('x {{.State.Nope}}', ctr)).toThrow(
      'template: :1:4: executing "" at <.State.Nope>: can\'t evaluate field Nope',
    );
    expect(() => run('{{nosuch .}}', ctr)).toThrow('function "nosuch" not defined');
    expect(() => Template.parse('{{if .X}}')).toThrow(TemplateError);
    expect(() => Template.parse('{{end}}')).toThrow('unexpected {{end}}');
    expect(() => Template.parse('{{.X')).toThrow('unclosed action');
  });
});

describe('--format rendering', () => {
  const row = psRow(
    {
      id: 'f'.repeat(64),
      name: 'web',
      image: 'busybox',
      command: 'sleep 100',
      created: new Date().toISOString(),
      status: 'Up 1 second',
      state: 'running',
      ports: [],
      labels: { a: '1', b: '2' },
    },
    false,
  );

  it("prints a table with docker's headers, aligned as docker's tabwriter", () => {
    const out = renderRows('table {{.ID}}\\t{{.Names}}\\t{{.State}}', [row], HEADERS.ps);
    expect(out).toBe(['CONTAINER ID   NAMES     STATE', 'ffffffffffff   web       running'].join('\n'));
  });

  it('renders .Label "k", .Labels and {{json .}} of a ps row', () => {
    expect(renderRows('{{.Label "b"}} {{.Labels}}', [row])).toBe('2 a=1,b=2');
    const json = JSON.parse(renderRows('{{json .}}', [row]));
    expect(json.Names).toBe('web');
    expect(json.Label).toBeUndefined();
  });

  it('renders one value for inspect -f', () => {
    expect(renderOne('{{.State.Pid}}', ctr)).toBe('42');
  });

  it('pads short columns to 10 and the last column not at all', () => {
    expect(tabwrite(['a\tb', 'ccc\td'])).toBe('a         b\nccc       d');
  });
});
