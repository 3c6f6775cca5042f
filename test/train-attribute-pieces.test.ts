/**
 * The Asyrp attribute-network training pipeline (src/pipelines/train-attribute.ts) without a model: the seeded
 * default DeltaBlock init by hand, the one-line errors, and "no timestep >= --t-edit" after a stand-in inversion
 * (the UNet call is a known function). Milliseconds; train-attribute-loop runs the training loop itself.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { InputError } from '../src/errors.js';
import { readAllFloat32 } from '../src/io/safetensors.js';
import type { DeltaParams } from '../src/methods/asyrp-training.js';
import { initialDeltaBlock, trainAttribute, type TrainAttributeOptions } from '../src/pipelines/train-attribute.js';
import { ck, clip, imageFolder, initByHand } from './train-attribute-stand-ins.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-tattr-'));


test('initialDeltaBlock: PyTorch default init from the seed, GroupNorm ones / zeros, shapes', () => {
  const p = initialDeltaBlock({ channels: 3, tembChannels: 5, groups: 3, eps: 1e-6 }, 11);
  const want = initByHand(3, 5, 11);
  for (const [n, v] of Object.entries(want)) assert.deepEqual(Array.from(p[n as keyof DeltaParams].data), v, n);
  assert.deepEqual(Object.fromEntries(Object.entries(p).map(([n, t]) => [n, t.shape])), {
    'conv_in.weight': [3, 3, 1, 1], 'conv_in.bias': [3], 'temb_proj.weight': [3, 5], 'temb_proj.bias': [3], 'norm.weight': [3], 'norm.bias': [3], 'conv_out.weight': [3, 3, 1, 1], 'conv_out.bias': [3],
  });
  assert.notDeepEqual(Array.from(initialDeltaBlock({ channels: 3, tembChannels: 5, groups: 3, eps: 1e-6 }, 12)['conv_in.weight'].data), want['conv_in.weight']);
});



test('train-attribute errors: --t-edit, --images not a folder / without images; no inversion timestep >= --t-edit', async () => {
  const dir = await imageFolder(tmp, 'errs', [['a.png', 1], ['notes.txt', 0]]);
  const base = { images: dir, source: 'a face', target: 'a smiling face', clip: clip(), out: path.join(tmp, 'errs.safetensors') };
  const bad = (o: Partial<TrainAttributeOptions>, msg: string) => assert.rejects(trainAttribute(ck(), { ...base, ...o }), (e: unknown) => e instanceof InputError && e.message === msg);
  await bad({ tEdit: 1000 }, '--t-edit must be an integer timestep in [0, 1000), got 1000');
  await bad({ tEdit: -1 }, '--t-edit must be an integer timestep in [0, 1000), got -1');
  await bad({ images: path.join(tmp, 'nowhere') }, `--images must be a folder of images: ${path.join(tmp, 'nowhere')}`);
  await bad({ images: path.join(dir, 'a.png') }, `--images must be a folder of images: ${path.join(dir, 'a.png')}`);
  const empty = await imageFolder(tmp, 'empty', [['readme.md', 0], ['x.png.txt', 0]]);
  await bad({ images: empty }, `--images folder ${empty} holds no images`);
  // .jpg and .tif files are images (these are not valid ones: a read error, not "holds no images")
  for (const f of ['photo.jpg', 'scan.tif']) {
    const d = await imageFolder(tmp, `ext-${f}`, [[f, 0]]);
    await assert.rejects(trainAttribute(ck(), { ...base, images: d }), (e: unknown) => e instanceof Error && !/holds no images/.test(e.message));
  }
  // steps 2 visit 1 and 501: t_edit 502 leaves nothing to edit (after the text direction and the inversion)
  const calls: number[] = [], texts: string[][] = [];
  await assert.rejects(trainAttribute(ck(calls), { ...base, clip: clip(texts), steps: 2, tEdit: 502 }), (e: unknown) => e instanceof InputError && e.message === 'no inversion timestep is >= --t-edit 502');
  assert.deepEqual(calls, [1, 501]);
  assert.deepEqual(texts, [['a face', 'a smiling face']]);
  // default t_edit 500 and steps 40: the inversion runs 40 steps (and 501 would be editable)
  const c2: number[] = [];
  await assert.rejects(trainAttribute(ck(c2), { ...base, tEdit: 977 }), /no inversion timestep is >= --t-edit 977/);
  assert.equal(c2.length, 40);
  assert.equal(c2[39], 976);
  // no iterations: the seeded init is written as it is; the last progress event has no loss yet
  const out = path.join(tmp, 'zero.safetensors'), events: string[] = [];
  const r = await trainAttribute(ck(), { ...base, out, iterations: 0, steps: 2, seed: 3, onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total} ${e.detail}`) });
  assert.deepEqual(r, { losses: [], images: 1 });
  assert.equal(events[events.length - 1], 'train 0/0 loss undefined');
  const saved = readAllFloat32(out), want = initByHand(64, 128, 3);
  for (const [n, v] of Object.entries(want)) assert.deepEqual(Array.from(saved[n]!.data), v, n);
});
