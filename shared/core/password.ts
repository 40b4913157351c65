import { randomInt } from 'node:crypto';
import { inspect } from 'node:util';

const REDACTED = '[redacted]';

/**
 * A value that must never be logged, serialised or put in an error. Every accidental path to text
 * (String(), template literals, JSON.stringify, util.inspect/console.log) yields "[redacted]";
 * only `reveal()` gives the value, and only the Graph adapter calls it, to build the request body.
 */
export class Secret {
  readonly #value: string;
  constructor(value: string) {
    this.#value = value;
  }
  reveal(): string {
    return this.#value;
  }
  toString(): string {
    return REDACTED;
  }
  toJSON(): string {
    return REDACTED;
  }
  [inspect.custom](): string {
    return REDACTED;
  }
}

const UPPER = 'ABCDEFGHJKLMNPQRSTUVWXYZ';
const LOWER = 'abcdefghijkmnopqrstuvwxyz';
const DIGITS = '23456789';
// Symbols Entra accepts in passwords; no quotes, spaces or backslash to keep JSON and shells calm.
const SYMBOLS = '!@#$%^&*-_=+?.';
const ALL = UPPER + LOWER + DIGITS + SYMBOLS;

export const GENERATED_PASSWORD_LENGTH = 24;

function pick(alphabet: string): string {
  return alphabet.charAt(randomInt(alphabet.length));
}

/**
 * A random password from the OS CSPRNG that meets Entra's complexity policy (8-256 characters,
 * at least 3 of 4 character classes: here always all 4). Nobody ever learns it: its only purpose
 * is to invalidate the old one.
 */
export function generatePassword(length = GENERATED_PASSWORD_LENGTH): Secret {
  if (length < 16 || length > 256) throw new RangeError('Password length must be 16-256.');
  const chars = [pick(UPPER), pick(LOWER), pick(DIGITS), pick(SYMBOLS)];
  while (chars.length < length) chars.push(pick(ALL));
  // Fisher-Yates with the CSPRNG, so the guaranteed classes are not always first.
  for (let i = chars.length - 1; i > 0; i--) {
    const j = randomInt(i + 1);
    [chars[i], chars[j]] = [chars[j] as string, chars[i] as string];
  }
  return new Secret(chars.join(''));
}
