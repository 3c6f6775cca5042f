/**
 * InjectFusion's pure pieces (src/pipelines/inject.ts) by hand: the timestep flags' range, the mask image as PIL's
 * convert('L') on the h-space grid, gamma's range. Milliseconds (the pipelines mutation slice's fast file for them;
 * the schedules themselves are pinned in bug-bank-pins, the sampling loop by hspace.test's model runs).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.js';
import type { RGBImage } from '../src/io/image.js';
import { checkTimestep, dtLambdaSchedule, gammaSchedule, maskAt } from '../src/pipelines/inject.js';

const inputError = (fn: () => unknown, message: string): void => {
  assert.throws(fn, (e: unknown) => e instanceof InputError && e.message === message, message);
};

test('checkTimestep: integers in [0, 1000), the flag named', () => {
  assert.deepEqual([0, 400, 999].map((t) => checkTimestep('--t-edit', t)), [0, 400, 999]);
  for (const t of [-1, 1000, 1.5, Number.NaN]) inputError(() => checkTimestep('--t-noise', t), `--t-noise must be an integer timestep in [0, 1000), got ${t}`);
});

test('maskAt: L = (299 R + 587 G + 114 B) / 1000 rounded, resized bilinearly to the h-space grid, / 255', () => {
  // red, green, blue, white: L = 76.245 -> 76, 149.685 -> 150, 29.07 -> 29, 255
  const mask = { width: 2, height: 2, data: Uint8Array.of(255, 0, 0, 0, 255, 0, 0, 0, 255, 255, 255, 255) } as RGBImage;
  const m = maskAt(mask, 2, 2);
  assert.deepEqual(m.shape, [1, 1, 2, 2]);
  assert.deepEqual(Array.from(m.data), [76, 150, 29, 255].map((v) => Math.fround(v / 255)));
  // a 1 x 2 grid: each half of the image's rows averaged (top 76/150, bottom 29/255 columns)
  const small = maskAt({ width: 2, height: 2, data: Uint8Array.of(200, 200, 200, 0, 0, 0, 100, 100, 100, 0, 0, 0) } as RGBImage, 1, 2);
  assert.deepEqual(small.shape, [1, 1, 1, 2]);
  assert.deepEqual(Array.from(small.data), [150, 0].map((v) => Math.fround(v / 255)));
});

test('gamma must be in [0, 1] at both ends of a ramp; dt_lambda only on injected steps', () => {
  for (const g of [1.5, -0.1, Number.NaN]) inputError(() => gammaSchedule(g, 3), `gamma must be in [0, 1], got ${g}`);
  inputError(() => gammaSchedule([0.2, 1.2], 3), 'gamma must be in [0, 1], got 1.2');
  inputError(() => gammaSchedule([-1, 0.5], 3), 'gamma must be in [0, 1], got -1');
  assert.deepEqual(gammaSchedule([0, 1], 2), [0, 1]);
  assert.deepEqual(gammaSchedule(1, 2), [1, 1]);
  const d = dtLambdaSchedule({ dtLambda: 0.5 }, (t) => (t === 960 ? 0 : 0.3));
  assert.deepEqual([999, 960, 950, 949].map(d), [0.5, 1, 0.5, 1]);
});
