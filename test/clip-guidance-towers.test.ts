/**
 * src/methods/clip-guidance.ts by hand: cosineDistance on a batch of two rows (one value per row, shape [B]; the
 * Asyrp and PNO objectives only ever pass one row), and the two feature towers: their ids (part of the PNO / Asyrp
 * compile-cache keys, so towers of different models, or a CLIP model and an image encoder of the same id, must not
 * share one), sizes, mean / std, and an image encoder tower's features equal to the encoder's own image_embeds.
 * About a second (tiny-sd15's image encoder; mutation slice methods-numeric).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import type { CLIPModel } from '../src/components/clip-model.js';
import { Graph } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { cosineDistance, towerOfCLIPModel, towerOfImageEncoder } from '../src/methods/clip-guidance.js';
import type { Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';

test('cosineDistance: 1 - cos per row of a batch of two, shape [B]', async () => {
  const g = new Graph('cos');
  const a = g.input('a', [2, 3]), b = g.input('b', [2, 3]);
  const d = cosineDistance(a, b);
  assert.deepEqual(d.shape, [2]);
  g.output('d', d);
  // row 0: (3,4,0).(4,3,0) = 24, |a| = |b| = 5 -> 1 - 0.96; row 1: orthogonal -> 1
  const r = (await runOnce(g, { a: { shape: [2, 3], data: Float32Array.from([3, 4, 0, 1, 0, 0]) }, b: { shape: [2, 3], data: Float32Array.from([4, 3, 0, 0, 0, 2]) } })).d!;
  assert.deepEqual(r.shape, [2]);
  assert.ok(Math.abs(r.data[0]! - 0.04) < 1e-6 && r.data[1] === 1, `got ${[...r.data]}`);
});

test('feature towers: ids per kind and model, CLIP / encoder sizes and statistics, encoder features = its image_embeds', async () => {
  const stand = (id: string, imageSize: number): CLIPModel => ({ id, config: { vision: { imageSize } } }) as unknown as CLIPModel;
  const t1 = towerOfCLIPModel(stand('m1', 30)), t2 = towerOfCLIPModel(stand('m2', 30));
  assert.equal(t1.id, 'clip-model:m1');
  assert.notEqual(t1.id, t2.id);
  assert.equal(t1.imageSize, 30);
  assert.deepEqual([t1.mean, t1.std], [[0.48145466, 0.4578275, 0.40821073], [0.26862954, 0.26130258, 0.27577711]]);

  const e = openCheckpoint(modelDir('tiny-sd15')).imageEncoder();
  const te = towerOfImageEncoder(e);
  assert.equal(te.id, `image-encoder:${e.id}`);
  assert.notEqual(te.id, towerOfCLIPModel(stand(e.id, 30)).id);
  assert.equal(te.imageSize, e.config.imageSize);
  assert.deepEqual([te.mean, te.std], [e.processor.config.image_mean, e.processor.config.image_std]);
  const s = te.imageSize;
  const px: Tensor = { shape: [1, 3, s, s], data: Float32Array.from({ length: 3 * s * s }, (_, i) => Math.sin(i * 0.37)) };
  const g = new Graph('tower');
  g.output('f', te.features(g.input('px', px.shape)));
  const got = (await runOnce(g, { px })).f!;
  const want = (await e.encodePixels(px)).imageEmbeds;
  assert.deepEqual(got.shape, want.shape);
  assert.deepEqual([...got.data], [...want.data]);
});
