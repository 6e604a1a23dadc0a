import { describe, expect, it, vi } from 'vitest';
import { CorralError } from '../src/index.js';

describe('CorralError', () => {
  it('is recognised across copies of its class (two bundles in one process), its subclasses by their own', async () => {
    vi.resetModules();
    const other = (await import('../src/errors.js?copy')) as typeof import('../src/errors.js');
    expect(other.CorralError).not.toBe(CorralError);
    const theirs = new other.CorralError('NotFound', 'No such container: x');
    expect(theirs).toBeInstanceOf(CorralError);
    expect(new CorralError('Conflict', 'y')).toBeInstanceOf(other.CorralError);
    class Sub extends CorralError {}
    expect(new Sub('Conflict', 'z')).toBeInstanceOf(CorralError);
    expect(theirs instanceof Sub).toBe(false);
    expect(new Error('plain') instanceof CorralError).toBe(false);
    expect({ kind: 'NotFound' } instanceof CorralError).toBe(false);
  });
});
