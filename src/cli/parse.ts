/** Flag value parsers for commander: each turns a bad value into a one-line InputError naming the flag. */
import { InputError } from '../errors.js';

function numeric(flag: string, integer: boolean, min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    const ok = integer ? Number.isInteger(n) : Number.isFinite(n);
    if (v.trim() === '' || !ok) throw new InputError(`${flag} must be ${integer ? 'an integer' : 'a number'}, got ${JSON.stringify(v)}`);
    if (n < min || n > max) throw new InputError(`${flag} must be in [${min}, ${max}], got ${n}`);
    return n;
  };
}

export const int = (flag: string, min = -Infinity, max = Infinity): ((v: string) => number) => numeric(flag, true, min, max);
export const float = (flag: string, min = -Infinity, max = Infinity): ((v: string) => number) => numeric(flag, false, min, max);

export function choice<T extends string>(flag: string, allowed: readonly T[]): (v: string) => T {
  return (v) => {
    if (!(allowed as readonly string[]).includes(v)) throw new InputError(`${flag} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
    return v as T;
  };
}

/** A seed: any integer torch accepts; kept as bigint when it does not fit a double exactly. */
export function seed(v: string): number | bigint {
  if (!/^-?\d+$/.test(v.trim())) throw new InputError(`--seed must be an integer, got ${JSON.stringify(v)}`);
  const b = BigInt(v.trim());
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}
