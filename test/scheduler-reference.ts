/**
 * Float64 reference arithmetic for the scheduler tests, written from the formulas (diffusers' docstrings,
 * the DDPM / DPM-Solver++ / UniPC papers), not from src/schedulers: the training schedule, sigmas, Karras
 * ramp, and small comparison helpers. The schedulers compute in float32, so comparisons are relative.
 */
import assert from 'node:assert/strict';
import { FileFormatError, InputError } from '../src/errors.js';

/** betas of a linear or scaled_linear schedule in float64. */
export function betas64(start: number, end: number, T: number, schedule: 'linear' | 'scaled_linear'): number[] {
  return Array.from({ length: T }, (_, i) => {
    const r = i / (T - 1);
    return schedule === 'linear' ? start + (end - start) * r : (Math.sqrt(start) + (Math.sqrt(end) - Math.sqrt(start)) * r) ** 2;
  });
}

/** alphas_cumprod = prod (1 - beta) in float64. */
export function alphaBar64(betas: readonly number[]): number[] {
  let p = 1;
  return betas.map((b) => (p *= 1 - b));
}

/** sigma = sqrt((1 - abar) / abar). */
export const sigmaOf = (abar: number): number => Math.sqrt((1 - abar) / abar);

/** Karras et al. (2022) eq. (5) with rho = 7, n values from sigmaMax down to sigmaMin. */
export function karras64(sigmaMin: number, sigmaMax: number, n: number): number[] {
  const a = sigmaMax ** (1 / 7), b = sigmaMin ** (1 / 7);
  return Array.from({ length: n }, (_, i) => (a + (n === 1 ? 0 : i / (n - 1)) * (b - a)) ** 7);
}

/** |got - want| <= rel * max(|want|, floor). */
export function near(got: number, want: number, rel: number, what: string, floor = 1e-30): void {
  assert.ok(Math.abs(got - want) <= rel * Math.max(Math.abs(want), floor), `${what}: ${got} vs ${want} (rel ${rel})`);
}

export function nearAll(got: ArrayLike<number>, want: ArrayLike<number>, rel: number, what: string, floor = 1e-30): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) near(got[i]!, want[i]!, rel, `${what}[${i}]`, floor);
}

/** Asserts a FileFormatError whose message is exactly `<file> [<key>]: <detail>` (one line). */
export function throwsFile(fn: () => unknown, file: string, key: string | undefined, detail: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
    assert.equal(e.key, key);
    assert.equal(e.message, `${file}${key === undefined ? '' : ` [${key}]`}: ${detail}`);
    return true;
  });
}

/** Asserts an InputError with exactly this message. */
export function throwsInput(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof InputError, `expected InputError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}
