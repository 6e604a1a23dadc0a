import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { CorralError, EngineError } from '../src/errors.js';
import { type ContainerRecord, RecordStore } from '../src/records.js';
import { sweepTrash, trashOf } from '../src/trash.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

function record(id: string, name: string): ContainerRecord {
  return {
    id,
    name,
    created: new Date().toISOString(),
    image: 'x',
    imageId: null,
    layers: [],
    config: {
      cmd: ['true'],
      env: [],
      workdir: '/',
      hostname: 'h',
      user: '',
      init: false,
      stopSignal: 'SIGTERM',
      stopTimeout: 10,
      tty: false,
    },
    hostConfig: {
      autoRemove: false,
      storageDriver: 'overlay',
      readonlyRootfs: false,
      privileged: false,
      capAdd: [],
      capDrop: [],
      seccomp: 'default',
      noNewPrivileges: false,
      resources: {},
    },
    state: {
      status: 'created',
      pid: 0,
      startedAt: null,
      finishedAt: null,
      exitCode: null,
      error: null,
      oomKilled: false,
      paused: false,
      detached: false,
    },
  };
}

function store(): RecordStore {
  return new RecordStore(cleanups.tempDir('engine-records'));
}

const id = 'a'.repeat(64);

describe('RecordStore', () => {
  it('claims a name once: the second claim is a Conflict, a bad name an InvalidArgument', () => {
    const s = store();
    expect(s.claimName('web', id)).toBe('web');
    const taken = (() => {
      try {
        s.claimName('web', 'b'.repeat(64));
      } catch (e) {
        return e;
      }
    })();
    expect(taken).toBeInstanceOf(EngineError);
    expect(taken).toBeInstanceOf(CorralError);
    expect((taken as EngineError).kind).toBe('Conflict');
    expect(() => s.claimName('-bad', id)).toThrow(expect.objectContaining({ kind: 'InvalidArgument' }));
  });

  it('resolves by name, id and unique prefix; an unknown one is NotFound', () => {
    const s = store();
    s.create(record(id, 'web'));
    s.claimName('web', id);
    expect(s.resolve('web').id).toBe(id);
    expect(s.resolve('aaaa').id).toBe(id);
    expect(() => s.resolve('nope')).toThrow(expect.objectContaining({ kind: 'NotFound' }));
    expect(() => s.update('f'.repeat(64), () => {})).toThrow(expect.objectContaining({ kind: 'NotFound' }));
  });

  it('keeps every update of writers in several processes at once (flock)', async () => {
    const s = store();
    s.create(record(id, 'web'));
    const module = fileURLToPath(new URL('../dist/records.js', import.meta.url));
    const writers = 4;
    const each = 150;
    // Each writer increments state.pid `each` times: a lost update shows as a smaller total.
    const script = `
      const { RecordStore } = await import(${JSON.stringify(module)});
      const s = new RecordStore(process.argv[1]);
      for (let i = 0; i < ${each}; i++) s.update(process.argv[2], (r) => { r.state.pid += 1; });
    `;
    const root = s.containers.replace(/\/containers$/, '');
    await Promise.all(
      Array.from({ length: writers }, () => {
        const child = spawn(process.execPath, ['--input-type=module', '-e', script, root, id], {
          stdio: ['ignore', 'inherit', 'inherit'],
        });
        return new Promise<void>((resolve, reject) =>
          child.on('exit', (code) => (code === 0 ? resolve() : reject(new Error(`writer exited ${code}`)))),
        );
      }),
    );
    expect(s.read(id)?.state.pid).toBe(writers * each);
  }, 60_000);

  it('makes a folder with its record at once: a creator SIGKILLed at any moment leaves only trash', async () => {
    const s = store();
    const root = s.containers.replace(/\/containers$/, '');
    const module = fileURLToPath(new URL('../dist/records.js', import.meta.url));
    // Creates records without end, as `corral run` does once per container, until killed.
    const script = `
      const { RecordStore } = await import(${JSON.stringify(module)});
      const { randomBytes } = await import('node:crypto');
      const s = new RecordStore(process.argv[1]);
      const r = JSON.parse(process.argv[2]);
      process.stdout.write('go\\n');
      for (;;) s.create({ ...r, id: randomBytes(32).toString('hex') });
    `;
    for (let round = 0; round < 8; round++) {
      const child = spawn(
        process.execPath,
        ['--input-type=module', '-e', script, root, JSON.stringify(record(id, 'x'))],
        {
          stdio: ['ignore', 'pipe', 'inherit'],
        },
      );
      await new Promise((r) => child.stdout.once('data', r));
      await new Promise((r) => setTimeout(r, 5 + Math.random() * 40));
      child.kill('SIGKILL');
      await new Promise((r) => child.once('exit', r));
    }
    const folders = readdirSync(s.containers);
    expect(folders.length).toBeGreaterThan(8);
    expect(folders.filter((f) => !existsSync(join(s.dir(f), 'container.json')))).toEqual([]);
    // What the killed creators had begun is theirs no more, and goes at the next open.
    sweepTrash(s.containers);
    expect(readdirSync(trashOf(s.containers))).toEqual([]);
  }, 60_000);

  it('leaves nothing of a create that fails', () => {
    const s = store();
    mkdirSync(join(s.dir(id), 'in-the-way'), { recursive: true });
    expect(() => s.create(record(id, 'web'))).toThrow(/ENOTEMPTY|EEXIST/);
    expect(readdirSync(trashOf(s.containers))).toEqual([]);
    expect(readdirSync(s.dir(id))).toEqual(['in-the-way']);
  });
});
