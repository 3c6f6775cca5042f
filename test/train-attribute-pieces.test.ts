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
import { openCheckpoint, type Checkpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { InputError } from '../src/errors.js';
import { writePNG, type RGBImage } from '../src/io/image.js';
import { readAllFloat32 } from '../src/io/safetensors.js';
import type { DeltaParams } from '../src/methods/asyrp-training.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { initialDeltaBlock, trainAttribute, type TrainAttributeOptions } from '../src/pipelines/train-attribute.js';
import type { Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';

const SD = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-tattr-'));

/** Params in the DeltaBlock order with PyTorch's default init by hand: U(+-1/sqrt(fan_in)), fan_in = channels except temb_proj's. */
function initByHand(c: number, temb: number, seed: number): Record<string, number[]> {
  const rng = new NativeGaussian(seed);
  const u = (n: number, fanIn: number) => Array.from({ length: n }, () => Math.fround((2 * (rng.nextUint32() / 2 ** 32) - 1) / Math.sqrt(fanIn)));
  const convIn = u(c * c, c), convInB = u(c, c), tembW = u(c * temb, temb), tembB = u(c, temb);
  const convOut = u(c * c, c), convOutB = u(c, c);
  return { 'conv_in.weight': convIn, 'conv_in.bias': convInB, 'temb_proj.weight': tembW, 'temb_proj.bias': tembB, 'norm.weight': new Array(c).fill(1), 'norm.bias': new Array(c).fill(0), 'conv_out.weight': convOut, 'conv_out.bias': convOutB };
}

test('initialDeltaBlock: PyTorch default init from the seed, GroupNorm ones / zeros, shapes', () => {
  const p = initialDeltaBlock({ channels: 3, tembChannels: 5, groups: 3, eps: 1e-6 }, 11);
  const want = initByHand(3, 5, 11);
  for (const [n, v] of Object.entries(want)) assert.deepEqual(Array.from(p[n as keyof DeltaParams].data), v, n);
  assert.deepEqual(Object.fromEntries(Object.entries(p).map(([n, t]) => [n, t.shape])), {
    'conv_in.weight': [3, 3, 1, 1], 'conv_in.bias': [3], 'temb_proj.weight': [3, 5], 'temb_proj.bias': [3], 'norm.weight': [3], 'norm.bias': [3], 'conv_out.weight': [3, 3, 1, 1], 'conv_out.bias': [3],
  });
  assert.notDeepEqual(Array.from(initialDeltaBlock({ channels: 3, tembChannels: 5, groups: 3, eps: 1e-6 }, 12)['conv_in.weight'].data), want['conv_in.weight']);
});

// Stand-in pixel model: eps = 0.1 x + 0.02 (inversion / sampling); the weights and arch of tiny-ddpm (for the objective).
let realUnet: ReturnType<Checkpoint['unet']> | undefined;
function ck(calls: number[] = [], withWeights = false): Checkpoint {
  const real = withWeights ? (realUnet ??= openCheckpoint(modelDir('tiny-ddpm')).unet()) : undefined;
  const unet = {
    conditional: false, inChannels: 3, sampleSize: 8, embedsGuidance: false, guidanceCond: () => undefined, config: { addition: null }, arch: real?.arch ?? { kind: 'unconditional', unet: { blockOutChannels: [32, 64, 64] } }, weights: real?.weights,
    async run(a: { sample: Tensor; timestep: number }) { calls.push(a.timestep); return { noisePred: { shape: a.sample.shape, data: a.sample.data.map((v) => 0.1 * v + 0.02) }, extra: {} }; },
  };
  return { path: 'tattr-stand-in', unet: () => unet, isPixelSpace: () => true, schedulerConfig: () => ({ raw: SD, file: 'scheduler_config.json' }), release: async () => {} } as unknown as Checkpoint;
}

let clipModel: CLIPModel | undefined;
const TEXT_DIM = 32;
const textFeat = (s: string) => Array.from({ length: TEXT_DIM }, (_, i) => Math.fround(Math.sin(s.length * 0.3 + i * 0.7)));
/** tiny-clip's weights and image tower; text features a known function of the text. */
function clip(texts: string[][] = [], real = false): CLIPModel {
  const m = real ? (clipModel ??= CLIPModel.open(modelDir('tiny-clip'))) : undefined;
  return { id: m?.id ?? 'no-clip', config: m?.config ?? { vision: { imageSize: 30 } }, weights: m?.weights, async textFeatures(t: string[]) { texts.push(t); return { shape: [t.length, TEXT_DIM], data: Float32Array.from(t.flatMap(textFeat)) }; } } as unknown as CLIPModel;
}

async function folder(name: string, files: [string, number][]): Promise<string> {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  for (const [f, seed] of files) {
    if (!/\.png$/i.test(f)) { fs.writeFileSync(path.join(dir, f), 'not an image'); continue; }
    await writePNG(path.join(dir, f), { width: 8, height: 8, data: Uint8Array.from({ length: 192 }, (_, i) => (i * 31 + seed * 57) % 256) } as RGBImage);
  }
  return dir;
}

test('train-attribute errors: --t-edit, --images not a folder / without images; no inversion timestep >= --t-edit', async () => {
  const dir = await folder('errs', [['a.png', 1], ['notes.txt', 0]]);
  const base = { images: dir, source: 'a face', target: 'a smiling face', clip: clip(), out: path.join(tmp, 'errs.safetensors') };
  const bad = (o: Partial<TrainAttributeOptions>, msg: string) => assert.rejects(trainAttribute(ck(), { ...base, ...o }), (e: unknown) => e instanceof InputError && e.message === msg);
  await bad({ tEdit: 1000 }, '--t-edit must be an integer timestep in [0, 1000), got 1000');
  await bad({ tEdit: -1 }, '--t-edit must be an integer timestep in [0, 1000), got -1');
  await bad({ images: path.join(tmp, 'nowhere') }, `--images must be a folder of images: ${path.join(tmp, 'nowhere')}`);
  await bad({ images: path.join(dir, 'a.png') }, `--images must be a folder of images: ${path.join(dir, 'a.png')}`);
  const empty = await folder('empty', [['readme.md', 0], ['x.png.txt', 0]]);
  await bad({ images: empty }, `--images folder ${empty} holds no images`);
  // .jpg and .tif files are images (these are not valid ones: a read error, not "holds no images")
  for (const f of ['photo.jpg', 'scan.tif']) {
    const d = await folder(`ext-${f}`, [[f, 0]]);
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
