import { ImageError } from '@corral/image';
import { RuntimeError } from '@corral/runtime';
import { describe, expect, it } from 'vitest';
import { asEngineError, CorralError, EngineError, httpStatus } from '../src/errors.js';
import { fromRuntime } from '../src/lifecycle.js';

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
