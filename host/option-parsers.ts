/**
 * Parsers for numeric command-line options, shared by every command. Each
 * refuses what is not exactly the kind of number asked for (commander shows
 * the message as "option '--x <n>' argument 'y' is invalid. expected …").
 */
import { InvalidArgumentError } from 'commander';

const WHOLE = /^\d+$/;

export function parsePositiveInt(value: string): number {
  if (!WHOLE.test(value) || Number(value) < 1) throw new InvalidArgumentError('expected a whole number of at least 1');
  return Number(value);
}

/** A whole number from 0 up (the empty string and signs refused). */
export function parseWhole(value: string): number {
  if (!WHOLE.test(value)) throw new InvalidArgumentError('expected a whole number');
  return Number(value);
}

/** A whole number from `min` to `max`. */
export function parseWholeIn(min: number, max: number) {
  return (value: string): number => {
    const n = WHOLE.test(value) ? Number(value) : NaN;
    if (!(n >= min && n <= max)) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

/** A 32-bit unsigned whole number (seeds, token counts the core takes as uint32). */
export const parseUint32 = parseWholeIn(0, 0xffffffff);

/** A decimal number from `min` to `max`. */
export function parseNumberIn(min: number, max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!/^-?\d+(\.\d+)?$/.test(value) || n < min || n > max) throw new InvalidArgumentError(`expected a number from ${min} to ${max}`);
    return n;
  };
}

export function parsePositiveNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n <= 0) throw new InvalidArgumentError('expected a positive number');
  return n;
}

export function parseNonNegativeNumber(value: string): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || n < 0) throw new InvalidArgumentError('expected a number >= 0');
  return n;
}

/** A fraction from 0 to below 1 (e.g. 0.5). */
export function parseFraction(value: string): number {
  const n = Number(value);
  if (!/^\d*\.?\d+$/.test(value) || !(n >= 0 && n < 1)) throw new InvalidArgumentError('expected a number from 0 to below 1, e.g. 0.5');
  return n;
}
