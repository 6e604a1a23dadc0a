import { randomBytes } from 'node:crypto';

const ADJECTIVES = [
  'agile',
  'bold',
  'brave',
  'calm',
  'clever',
  'eager',
  'fancy',
  'gentle',
  'happy',
  'jolly',
  'keen',
  'lucid',
  'merry',
  'nimble',
  'proud',
  'quiet',
  'rapid',
  'sharp',
  'steady',
  'swift',
  'tender',
  'vivid',
  'witty',
  'zen',
];
const NOUNS = [
  'badger',
  'bison',
  'camel',
  'colt',
  'crane',
  'falcon',
  'ferret',
  'gecko',
  'heron',
  'ibex',
  'lynx',
  'mare',
  'marten',
  'otter',
  'pony',
  'puffin',
  'quail',
  'raven',
  'stallion',
  'stoat',
  'tapir',
  'walrus',
  'wren',
  'yak',
];

/** A 64-hex-digit container id, like Docker's. */
export function newId(): string {
  return randomBytes(32).toString('hex');
}

/** A readable name such as `swift_otter`. */
export function randomName(): string {
  const pick = <T>(a: T[]) => a[randomBytes(1)[0] % a.length];
  return `${pick(ADJECTIVES)}_${pick(NOUNS)}`;
}

/** Docker's rule for container names. */
export const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

export function shortId(id: string): string {
  return id.slice(0, 12);
}
