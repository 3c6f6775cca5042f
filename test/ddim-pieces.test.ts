/**
 * The pieces of a DDIM step on values worked out by hand (a_t = 0.64: sqrt 0.8 and 0.6; a_prev = 0.81: sqrt 0.9).
 * The trajectory goldens only use epsilon models: the `sample` and `v_prediction` branches, the clip, the
 * variance and the eta-noise update are pinned here (surviving mutants of the schedulers slice).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { clipSampleInPlace, ddimUpdate, ddimVariance, predictOriginalAndEpsilon } from '../src/schedulers/ddim.js';

const near = (got: ArrayLike<number>, want: number[], what: string): void => {
  assert.equal(got.length, want.length, `${what}: length`);
  want.forEach((w, i) => assert.ok(Math.abs(got[i]! - w) <= 1e-6 * Math.max(1, Math.abs(w)), `${what}[${i}] = ${got[i]}, by hand ${w}`));
};
const sample = Float32Array.of(1, 0.2);
const out = Float32Array.of(0.5, -1);

test('DDIM x0 / eps from the model output: epsilon, sample and v_prediction by hand', () => {
  // epsilon: x0 = (x - 0.6 eps) / 0.8
  let r = predictOriginalAndEpsilon('epsilon', out, sample, 0.64);
  near(r.predOriginalSample, [0.875, 1], 'epsilon x0'); near(r.predEpsilon, [0.5, -1], 'epsilon eps');
  // sample: x0 = output, eps = (x - 0.8 x0) / 0.6
  r = predictOriginalAndEpsilon('sample', out, sample, 0.64);
  near(r.predOriginalSample, [0.5, -1], 'sample x0'); near(r.predEpsilon, [1, 1 / 0.6], 'sample eps');
  // v: x0 = 0.8 x - 0.6 v, eps = 0.8 v + 0.6 x
  r = predictOriginalAndEpsilon('v_prediction', out, sample, 0.64);
  near(r.predOriginalSample, [0.5, 0.76], 'v x0'); near(r.predEpsilon, [1, -0.68], 'v eps');
  assert.throws(() => predictOriginalAndEpsilon('flow' as never, out, sample, 0.64), /prediction_type must be one of/);
});

test('DDIM clip, variance and the eta update by hand', () => {
  near(clipSampleInPlace(Float32Array.of(1.5, -2, 0.3, 1, -1), 1), [1, -1, 0.3, 1, -1], 'clip');
  // (1 - 0.81) / (1 - 0.64) * (1 - 0.64 / 0.81)
  assert.ok(Math.abs(ddimVariance(0.64, 0.81) - (0.19 / 0.36) * (1 - 0.64 / 0.81)) < 1e-7);
  // eta 0: 0.9 x0 + sqrt(0.19) eps
  near(ddimUpdate(Float32Array.of(0.5, 1), Float32Array.of(1, -2), 0.81), [0.45 + Math.sqrt(0.19), 0.9 - 2 * Math.sqrt(0.19)], 'eta 0');
  // sigma 0.3: 0.9 x0 + sqrt(0.19 - 0.09) eps + 0.3 noise
  near(ddimUpdate(Float32Array.of(0.5, 1), Float32Array.of(1, -2), 0.81, { stdDevT: 0.3, noise: Float32Array.of(2, -1) }), [0.45 + Math.sqrt(0.1) + 0.6, 0.9 - 2 * Math.sqrt(0.1) - 0.3], 'eta > 0');
  assert.throws(() => ddimUpdate(Float32Array.of(0.5), Float32Array.of(1), 0.81, { stdDevT: 0.3 }), /needs variance noise/);
  assert.throws(() => ddimUpdate(Float32Array.of(0.5), Float32Array.of(1), 0.81, { stdDevT: 0.3, noise: Float32Array.of(1, 2) }), /variance noise has 2 values, the sample 1/);
});
