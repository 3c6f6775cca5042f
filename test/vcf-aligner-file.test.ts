/**
 * An aligner file's tensors against the aligner's shapes (alignerShapeOf): the shape is read from fc1 / fc2,
 * every tensor must fit it, and the model's widths must match; each refusal is one line naming the file,
 * the tensor and both shapes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileFormatError } from '../src/errors.js';
import { ALIGNER_PARAMS, alignerShapeOf } from '../src/methods/vcf/aligner.js';
import type { Tensor } from '../src/tensor.js';

const F = 'aligner.safetensors';
const t = (...shape: number[]): Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
// dv 3 -> hidden 4 -> dt 2
const good = (): Record<string, Tensor> => ({
  'norm.weight': t(3), 'norm.bias': t(3), 'fc1.weight': t(4, 3), 'fc1.bias': t(4), 'fc2.weight': t(2, 4), 'fc2.bias': t(2),
});
function refused(fn: () => unknown, message: string, key: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `a FileFormatError, got ${String(e)}`);
    assert.equal(e.message, `${F} [${key}]: ${message}`);
    assert.equal(e.key, key);
    return true;
  });
}

test('aligner shape from fc1 [hidden, dv] and fc2 [dt, hidden]; the model\'s widths may be given or not', () => {
  assert.deepEqual(alignerShapeOf(good(), F), { dv: 3, hidden: 4, dt: 2 });
  assert.deepEqual(alignerShapeOf(good(), F, { dv: 3, dt: 2 }), { dv: 3, hidden: 4, dt: 2 });
});

test('aligner file: each missing tensor is named', () => {
  for (const n of ALIGNER_PARAMS) {
    const p = good();
    delete p[n];
    refused(() => alignerShapeOf(p, F), 'not an aligner file: tensor missing', n);
  }
});

test('aligner file: a tensor of the wrong shape names both shapes; another model\'s widths name both pairs', () => {
  refused(() => alignerShapeOf({ ...good(), 'norm.bias': t(4) }, F), 'shape [4] does not fit an aligner 3 -> 4 -> 2 (expected [3])', 'norm.bias');
  refused(() => alignerShapeOf({ ...good(), 'fc2.bias': t(1, 2) }, F), 'shape [1, 2] does not fit an aligner 3 -> 4 -> 2 (expected [2])', 'fc2.bias');
  refused(() => alignerShapeOf({ ...good(), 'fc2.weight': t(2, 5) }, F), 'shape [2, 5] does not fit an aligner 3 -> 4 -> 2 (expected [2, 4])', 'fc2.weight');
  const other = (dv: number, dt: number) => `aligner maps 3-dim image tokens to 2-dim text embeddings, but this model has ${dv}-dim image tokens and ${dt}-dim text embeddings (an aligner for another model?)`;
  refused(() => alignerShapeOf(good(), F, { dv: 5, dt: 2 }), other(5, 2), 'fc1.weight');
  refused(() => alignerShapeOf(good(), F, { dv: 3, dt: 7 }), other(3, 7), 'fc1.weight');
});
