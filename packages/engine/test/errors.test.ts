import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ImageError } from '@corral/image';
import { NetworkError } from '@corral/network';
import { RuntimeError } from '@corral/runtime';
import { Cleanups } from '@corral/testkit';
import { afterEach, describe, expect, it } from 'vitest';
import { asEngineError, CorralError, EngineError, httpStatus, repairAdvice } from '../src/errors.js';
import { fromRuntime } from '../src/lifecycle.js';
import { fromNetwork } from '../src/network-config.js';
import { fromOci, RecordStore, runtimeStatus } from '../src/records.js';

const cleanups = new Cleanups();
afterEach(() => cleanups.run());

describe('error kinds', () => {
  it('EngineError and RuntimeError share one base with a kind', () => {
    const e = new EngineError('NotFound', 'No such container: x');
    expect(e).toBeInstanceOf(CorralError);
    expect(e.kind).toBe('NotFound');
    expect(new RuntimeError('exec: "x": executable file not found in $PATH', 127)).toBeInstanceOf(
      CorralError,
    );
    expect(new RuntimeError('x', 127).kind).toBe('CommandNotFound');
    expect(new RuntimeError('x', 126).kind).toBe('NotExecutable');
    expect(new RuntimeError('x').kind).toBe('CannotStart');
  });

  it("maps kinds to Docker's HTTP statuses", () => {
    expect(httpStatus('NotFound')).toBe(404);
    expect(httpStatus('Conflict')).toBe(409);
    expect(httpStatus('InvalidArgument')).toBe(400);
    expect(httpStatus('NotModified')).toBe(304);
    expect(httpStatus('Forbidden')).toBe(403);
    expect(httpStatus('CannotStart')).toBe(500);
  });

  it("gives library errors the engine's kinds, the message kept", () => {
    const img = asEngineError(new ImageError('NOT_FOUND', 'no such image: x')) as EngineError;
    expect(img).toBeInstanceOf(EngineError);
    expect([img.kind, img.message]).toEqual(['NotFound', 'no such image: x']);
    expect((asEngineError(new ImageError('IN_USE', 'used')) as EngineError).kind).toBe('Conflict');
    expect((asEngineError(new ImageError('BAD_ARCHIVE', 'bad')) as EngineError).kind).toBe('InvalidArgument');
    const rt = fromRuntime(new RuntimeError('no', 126)) as EngineError;
    expect([rt.kind, rt.message]).toEqual(['NotExecutable', 'no']);
    const other = new TypeError('x');
    expect(asEngineError(other)).toBe(other);
  });
});

// Libraries say what is wrong and which file; the remedy is data (`repair`), and each
// front-end words it: the CLI names its command, the daemon none.
describe('damaged state carries its repair as data', () => {
  it('a damaged record names its file, no CLI command, and asks for system-check', () => {
    const root = cleanups.tempDir('engine-damaged');
    const records = new RecordStore(root);
    mkdirSync(records.dir('abc'), { recursive: true });
    const file = join(records.dir('abc'), 'container.json');
    writeFileSync(file, '{"id": "abc", ');
    let caught: unknown;
    try {
      records.read('abc');
    } catch (e) {
      caught = e;
    }
    expect(caught).toBeInstanceOf(EngineError);
    const e = caught as EngineError;
    expect(e.message).toContain(file);
    expect(e.message).toMatch(/is damaged/);
    expect(e.message).not.toMatch(/`corral |system check|--repair/);
    expect([e.kind, e.repair]).toEqual(['Unavailable', 'system-check']);
    expect(repairAdvice(e)).toMatch(/data root/);
    expect(repairAdvice(e)).not.toMatch(/corral|--repair/);
    expect(repairAdvice(new EngineError('NotFound', 'x'))).toBeUndefined();
  });

  it('keeps the repair of image, runtime and network errors', () => {
    const img = asEngineError(new ImageError('DAMAGED_STATE', 'the state file /x is damaged')) as EngineError;
    expect([img.kind, img.repair]).toEqual(['Unavailable', 'system-check']);
    const blob = new ImageError('DIGEST_MISMATCH', 'blob b holds other data', { repair: 'system-check' });
    expect((asEngineError(blob) as EngineError).repair).toBe('system-check');
    expect(
      (asEngineError(new ImageError('DIGEST_MISMATCH', 'pulled bad')) as EngineError).repair,
    ).toBeUndefined();
    const rt = fromRuntime(new RuntimeError('the state file /s is damaged', 125, { repair: 'system-check' }));
    expect((rt as EngineError).repair).toBe('system-check');
    const net = fromNetwork(new NetworkError('Unavailable', 'damaged', { repair: 'system-check' }));
    expect((net as EngineError).repair).toBe('system-check');
  });
});

describe("one status vocabulary: the runtime's OCI words in Docker's", () => {
  it('maps stopped to exited and keeps the others; no runtime state is exited', () => {
    expect(fromOci('stopped')).toBe('exited');
    expect(fromOci('created')).toBe('created');
    expect(fromOci('running')).toBe('running');
    expect(fromOci('paused')).toBe('paused');
    const none = {
      state: (): never => {
        throw new RuntimeError('container x does not exist', 1);
      },
    };
    expect(runtimeStatus(none, 'x')).toBe('exited');
  });
});
