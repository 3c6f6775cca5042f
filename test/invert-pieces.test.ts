/**
 * DDIM inversion's input side (src/pipelines/invert.ts) on stand-in checkpoints (no model runs, milliseconds):
 * imageToLatents for pixel-space models (pixels in [-1, 1] at the image's own size, no VAE) and latent models
 * (floored to the VAE's own factor, resized to the asked size), the SDXL micro-conditioning of the inversion's UNet
 * calls (pixel sizes = latent size x VAE factor), a pixel-space inversion (no text conditioning at all) and the
 * h-space tap's hooks. The loop itself (guidance, chain, noise predictions) is pinned in vary-loop.test.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';
import { composeVariants, type UNetCall, type UNetVariant } from '../src/components/unet.js';
import { Graph } from '../src/graph/ir.js';
import type { RGBImage } from '../src/io/image.js';
import { VaeImageProcessor } from '../src/io/vae-image-processor.js';
import { imageToLatents, invert } from '../src/pipelines/invert.js';
import type { Tensor } from '../src/tensor.js';

const CONFIG = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };
/** A 13 x 10 image: neither side a multiple of 4 or 8. */
const IMAGE = { width: 13, height: 10, data: Uint8Array.from({ length: 13 * 10 * 3 }, (_, j) => (j * 7) % 256) } as RGBImage;

interface Seen { calls: UNetCall[]; encoded: Tensor[]; texts: (string | null)[][] }

/**
 * pixel: a UNet2DModel-style checkpoint (no VAE, no text); otherwise a latent model whose VAE has `factor` and whose
 * text encoding is SDXL-like (pooled text, added time ids) when `sdxl`.
 */
function standIn(seen: Seen, o: { pixel?: boolean; factor?: number; sdxl?: boolean } = {}): Checkpoint {
  const noVae = (): never => { throw new Error('a pixel-space model has no VAE'); };
  const unet = {
    conditional: !o.pixel,
    async run(a: UNetCall) {
      seen.calls.push(a);
      return { noisePred: { shape: a.sample.shape, data: a.sample.data.map((x) => 0.1 * x) }, extra: {} };
    },
  };
  const factor = o.factor ?? 8;
  const vae = {
    scaleFactor: factor,
    async encodeToLatents(px: Tensor): Promise<Tensor> {
      seen.encoded.push(px);
      return { shape: [1, 1, px.shape[2]! / factor, px.shape[3]! / factor], data: new Float32Array((px.shape[2]! / factor) * (px.shape[3]! / factor)).fill(0.5) };
    },
  };
  const conditioner = {
    async encode(texts: (string | null)[]) {
      seen.texts.push(texts);
      const n = texts.length;
      return new PromptEmbeddings({ shape: [n, 1, 1], data: Float32Array.from(texts, (_, i) => i + 1) }, o.sdxl ? { shape: [n, 2], data: new Float32Array(2 * n).fill(3) } : undefined, [],
        o.sdxl ? { timeEmbedDim: 1, inputDim: 8 } : null);
    },
  };
  return {
    unet: () => unet, isPixelSpace: () => !!o.pixel, conditioner: () => (o.pixel ? noVae() : conditioner),
    autoencoder: () => (o.pixel ? noVae() : vae), vae: () => (o.pixel ? noVae() : vae),
    release: async () => undefined, schedulerConfig: () => ({ raw: CONFIG, file: 'scheduler_config.json' }),
  } as unknown as Checkpoint;
}
const fresh = (): Seen => ({ calls: [], encoded: [], texts: [] });

test('imageToLatents: pixel-space models get the pixels in [-1, 1] at the image\'s own size (factor 1) or the asked size, no VAE', async () => {
  const ck = standIn(fresh(), { pixel: true });
  const own = await imageToLatents(ck, IMAGE);
  assert.deepEqual(own.shape, [1, 3, 10, 13]);
  assert.deepEqual(own.data, new VaeImageProcessor({ vae_scale_factor: 1 }).preprocess(IMAGE).data);
  assert.ok(Math.min(...own.data) === -1 && Math.max(...own.data) <= 1, 'pixels in [-1, 1]');
  const sized = await imageToLatents(ck, IMAGE, { width: 6, height: 4 });
  assert.deepEqual(sized.shape, [1, 3, 4, 6]);
  assert.deepEqual(sized.data, new VaeImageProcessor({ vae_scale_factor: 1 }).preprocess(IMAGE, { width: 6, height: 4 }).data);
  assert.deepEqual((await imageToLatents(ck, IMAGE, {})).shape, [1, 3, 10, 13]);
});

test('imageToLatents: latent models floor the image to the VAE\'s own factor (4 here, not the default 8) and resize to the asked size', async () => {
  const seen = fresh(), ck = standIn(seen, { factor: 4 });
  const z = await imageToLatents(ck, IMAGE);
  assert.deepEqual(seen.encoded[0]!.shape, [1, 3, 8, 12]);
  assert.deepEqual(seen.encoded[0]!.data, new VaeImageProcessor({ vae_scale_factor: 4 }).preprocess(IMAGE).data);
  assert.deepEqual(z.shape, [1, 1, 2, 3]);
  await imageToLatents(ck, IMAGE, { width: 8, height: 4 });
  assert.deepEqual(seen.encoded[1]!.shape, [1, 3, 4, 8]);
  assert.deepEqual(seen.encoded[1]!.data, new VaeImageProcessor({ vae_scale_factor: 4 }).preprocess(IMAGE, { width: 8, height: 4 }).data);
  // invert takes the size from its options
  const inv = await invert(ck, IMAGE, { prompt: 'p', steps: 1, width: 16, height: 12 });
  assert.deepEqual(seen.encoded[2]!.shape, [1, 3, 12, 16]);
  assert.deepEqual(inv.chain[0]!.shape, [1, 1, 3, 4]);
});

test('invert on an SDXL-like model: time ids are the pixel size (latent size x VAE factor), given micro-conditioning wins, on every row of every call', async () => {
  const z0: Tensor = { shape: [1, 1, 2, 3], data: Float32Array.of(0.1, -0.2, 0.3, 0.4, -0.5, 0.6) };
  const seen = fresh();
  const inv = await invert(standIn(seen, { factor: 4, sdxl: true }), z0, { prompt: 'p', steps: 2 });
  const ids = (t: Tensor | undefined): number[] => Array.from(t!.data);
  assert.deepEqual(ids(inv.conditioning!.addedCond!.timeIds), [8, 12, 0, 0, 8, 12]);
  assert.deepEqual(seen.calls.map((c) => ids(c.addedCond?.timeIds)), [[8, 12, 0, 0, 8, 12], [8, 12, 0, 0, 8, 12]]);
  // guided: [uncond, cond] rows, both with the same ids; a given crop and original size replace the defaults
  const g = fresh();
  const guided = await invert(standIn(g, { factor: 8, sdxl: true }), z0, { prompt: 'p', steps: 1, guidance: 2, micro: { cropTopLeft: [1, 2], originalSize: [100, 200] } });
  assert.deepEqual(g.texts, [[null, 'p']]);
  assert.deepEqual(ids(g.calls[0]!.addedCond!.timeIds), [100, 200, 1, 2, 16, 24, 100, 200, 1, 2, 16, 24]);
  assert.deepEqual(ids(guided.conditioning!.addedCond!.timeIds), [100, 200, 1, 2, 16, 24]);
});

test('invert on a pixel-space model: no text encoder, no conditioning in the result or the UNet calls; the image as pixels', async () => {
  const seen = fresh();
  const ck = standIn(seen, { pixel: true });
  const inv = await invert(ck, IMAGE, { prompt: 'ignored', steps: 2, guidance: 3, width: 8, height: 6 });
  assert.equal(inv.promptEmbeds, undefined);
  assert.equal(inv.conditioning, undefined);
  assert.deepEqual(inv.chain[0]!.data, new VaeImageProcessor({ vae_scale_factor: 1 }).preprocess(IMAGE, { width: 8, height: 6 }).data);
  assert.deepEqual(inv.chain.map((z) => z.shape), [[1, 3, 6, 8], [1, 3, 6, 8], [1, 3, 6, 8]]);
  // unguided on pixel models whatever the scale: one row a call, nothing but the sample and the timestep
  assert.deepEqual(seen.calls.map((c) => [c.sample.shape[0], c.encoderHiddenStates, c.addedCond]), [[1, undefined, undefined], [1, undefined, undefined]]);
});

test('the h-space tap (captureHSpace) returns an empty hooks object, so it composes with other UNet variants', async () => {
  const seen = fresh();
  await invert(standIn(seen, { factor: 4 }), { shape: [1, 1, 1, 1], data: Float32Array.of(0.5) }, { prompt: 'p', steps: 1, captureHSpace: true });
  const tap = seen.calls[0]!.variant as UNetVariant;
  assert.equal(tap.key, 'tap-mid-block');
  assert.deepEqual(tap.outputs, ['mid_block']);
  assert.deepEqual(tap.hooks(new Graph(), 1, {} as never), {});
  const both = composeVariants([tap, { key: 'other', hooks: () => ({ skip: (_i, s) => s }) }])!;
  assert.equal(both.key, 'tap-mid-block+other');
  assert.equal(typeof both.hooks(new Graph(), 1, {} as never).skip, 'function');
});
