import { describe, expect, it } from 'vitest';
import { labelsMatch } from '../src/housekeeping.js';

describe('ps --filter label=', () => {
  const labels = { app: 'web', tier: '' };

  it('matches a key, and a key with its value', () => {
    expect(labelsMatch(labels, ['app'])).toBe(true);
    expect(labelsMatch(labels, ['app=web', 'tier='])).toBe(true);
    expect(labelsMatch(labels, ['app=db'])).toBe(false);
    expect(labelsMatch(labels, ['team'])).toBe(false);
  });

  it('never matches a name an object inherits (constructor, toString, __proto__)', () => {
    for (const k of ['constructor', 'toString', '__proto__', 'hasOwnProperty'])
      expect(labelsMatch(labels, [k])).toBe(false);
    expect(labelsMatch(labels, ['constructor=function Object() { [native code] }'])).toBe(false);
  });
});
