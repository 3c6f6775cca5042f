/**
 * Step previews (src/pipelines/preview.ts) without a model: the linear latent-to-RGB map against the published
 * ComfyUI factors written out here (float64, PIL-style rounding), and the per-step hook of a run on stand-in
 * checkpoints (which decoder, which family, every N steps, x0 or latents, NaN previews dropped, abort, the one-line
 * errors). Milliseconds (the pipelines mutation slice's fast file for preview.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { InputError } from '../src/errors.js';
import { latentsToRgbApprox, previewHook, type PreviewOptions } from '../src/pipelines/preview.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import type { Tensor } from '../src/tensor.js';

// ComfyUI's latent_rgb_factors (SD 1.5 / SDXL) and SDXL's bias, as published.
const SD = [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]];
const SDXL = [[0.3920, 0.4054, 0.4549], [-0.2634, -0.0196, 0.0653], [0.0568, 0.1687, -0.0755], [-0.3112, -0.2359, -0.2076]];
const SDXL_BIAS = [0.1084, -0.0175, -0.0011];

/** Round half to even, as numpy's round (PIL previews). */
const rhe = (v: number): number => { const r = Math.round(v); return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r; };
const toByte = (v: number): number => (Number.isFinite(v) ? rhe(Math.min(Math.max(v, 0), 1) * 255) : 0);

/** The linear map by hand: latents [B, 4, h, w] -> per image RGB bytes, pixel-major. */
function linearRgb(z: Tensor, f: number[][], bias: number[]): number[][] {
  const [b, , h, w] = z.shape as [number, number, number, number];
  const n = h * w;
  return Array.from({ length: b }, (_, bi) => Array.from({ length: n * 3 }, (_, j) => {
    const i = Math.floor(j / 3), c = j % 3;
    let v = bias[c]!;
    for (let k = 0; k < 4; k++) v += z.data[bi * 4 * n + k * n + i]! * f[k]![c]!;
    return toByte((v + 1) / 2);
  }));
}

// [2, 4, 1, 3]: two images of 3 x 1; values that land inside, below 0 and above 1, and one NaN.
const Z: Tensor = { shape: [2, 4, 1, 3], data: Float32Array.from([
  0.5, -2, 3, 0.1, 1.5, -0.7, -0.3, 0.9, 2.2, 0.25, -1.25, 0.6,
  -0.4, 0.8, Number.NaN, 1.1, -0.6, 0.2, 0.7, 0.05, -0.9, -1.5, 0.33, 2.5,
]) };

test('latentsToRgbApprox: SD and SDXL factors (and bias) by hand, clamped, NaN -> 0, one image per row at latent size', () => {
  for (const [family, f, bias] of [['sd', SD, [0, 0, 0]], ['sdxl', SDXL, SDXL_BIAS]] as const) {
    const got = latentsToRgbApprox(Z, family);
    assert.equal(got.length, 2);
    const want = linearRgb(Z, f as number[][], bias as number[]);
    got.forEach((im, i) => {
      assert.equal(im.width, 3);
      assert.equal(im.height, 1);
      assert.ok(im.data instanceof Uint8Array);
      assert.deepEqual(Array.from(im.data), want[i], `${family} image ${i}`);
    });
    // every pixel of image 1 at column 2 reads the NaN channel: 0
    assert.deepEqual(Array.from(got[1]!.data.subarray(6, 9)), [0, 0, 0]);
  }
  // clamping shows at both ends in this data (0 and 255 occur)
  const all = latentsToRgbApprox(Z, 'sd').flatMap((im) => Array.from(im.data));
  assert.ok(all.includes(255) && all.includes(0));
  for (const shape of [[1, 3, 2, 2], [1, 4, 4], [1, 5, 1, 1]]) {
    const n = shape.reduce((a, b) => a * b, 1);
    assert.throws(() => latentsToRgbApprox({ shape, data: new Float32Array(n) }, 'sd'),
      (e: unknown) => e instanceof InputError && e.message === `latent-to-RGB previews need 4-channel latents, got [${shape.join(', ')}] (give --vae-tiny)`);
  }
});

interface CkOpts { pixel?: boolean; channels?: number; scaling?: number | null }
function ck(o: CkOpts = {}): Checkpoint {
  return {
    isPixelSpace: () => o.pixel ?? false,
    unet: () => ({ inChannels: o.channels ?? 4 }),
    has: (c: string) => c === 'vae' && o.scaling !== null,
    vae: () => { if (o.scaling === null) throw new Error('no vae'); return { config: { scalingFactor: o.scaling ?? 0.18215 } }; },
  } as unknown as Checkpoint;
}

type Ev = { step: number; total: number; source: string; decoder: string; images: number[][]; sizes: number[][]; stage: string; top: number };
function listen(): { events: Ev[]; onProgress: (e: ProgressEvent) => void } {
  const events: Ev[] = [];
  return {
    events,
    onProgress: (e) => {
      assert.ok(e.preview, 'only preview events');
      assert.deepEqual(Object.keys(e).sort(), ['preview', 'stage', 'step', 'total']);
      assert.deepEqual(Object.keys(e.preview).sort(), ['decoder', 'images', 'source', 'step']);
      events.push({ stage: e.stage, top: e.step, total: e.total!, step: e.preview.step, source: e.preview.source, decoder: e.preview.decoder,
        images: e.preview.images.map((im) => Array.from(im.data)), sizes: e.preview.images.map((im) => [im.width, im.height]) });
    },
  };
}

const err = (msg: string) => (e: unknown) => e instanceof InputError && e.message === msg;

test('previewHook: none asked, --preview-every errors, 4-channel rule, no listener', () => {
  const l = listen();
  assert.equal(previewHook(ck(), { onProgress: l.onProgress }), undefined);
  for (const every of [0, -1, 1.5, Number.NaN]) {
    assert.throws(() => previewHook(ck(), { preview: { every }, onProgress: l.onProgress }), err(`--preview-every must be an integer >= 1, got ${every}`));
    // validated even when nobody listens
    assert.throws(() => previewHook(ck(), { preview: { every } }), err(`--preview-every must be an integer >= 1, got ${every}`));
  }
  const ch = 'this UNet takes 3 channels';
  assert.throws(() => previewHook(ck({ channels: 3 }), { preview: { every: 1 }, onProgress: l.onProgress }), err(`--preview-every without --vae-tiny needs 4-channel latents; ${ch}`));
  assert.throws(() => previewHook(ck({ channels: 3 }), { preview: { every: 1 } }), err(`--preview-every without --vae-tiny needs 4-channel latents; ${ch}`));
  // a tiny VAE, or pixel space, lifts the 4-channel rule (and never asks the VAE for its family)
  const decoder = { scaleFactor: 8, decode: async () => ({ shape: [1, 3, 1, 1], data: new Float32Array(3) }) } as unknown as PreviewOptions['decoder'];
  assert.equal(typeof previewHook(ck({ channels: 3, scaling: null }), { preview: { every: 1, decoder }, onProgress: l.onProgress }), 'function');
  assert.equal(typeof previewHook(ck({ channels: 3, scaling: null, pixel: true }), { preview: { every: 1 }, onProgress: l.onProgress }), 'function');
  assert.equal(typeof previewHook(ck({ scaling: null }), { preview: { every: 1 }, onProgress: l.onProgress }), 'function');
  // valid, but nobody listens: no hook
  assert.equal(previewHook(ck(), { preview: { every: 1 } }), undefined);
  assert.equal(l.events.length, 0);
});

test('previewHook, latent-rgb: every N steps, x0 else latents, SD vs SDXL family from the VAE scaling factor', async () => {
  const x0: Tensor = { shape: [2, 4, 1, 3], data: Z.data.map((v) => (Number.isNaN(v) ? 0.5 : v)) };
  const lat: Tensor = { shape: [2, 4, 1, 3], data: x0.data.map((v) => -v / 2) };
  for (const [scaling, f, bias] of [[0.18215, SD, [0, 0, 0]], [0.13025, SDXL, SDXL_BIAS], [0.1302525, SD, [0, 0, 0]], [null, SD, [0, 0, 0]]] as const) {
    const l = listen();
    const hook = previewHook(ck({ scaling }), { preview: { every: 2 }, onProgress: l.onProgress })!;
    for (let s = 1; s <= 5; s++) await hook(s, 5, s === 4 ? undefined : x0, lat);
    assert.deepEqual(l.events.map((e) => [e.stage, e.top, e.total, e.step, e.source, e.decoder]), [['denoise', 2, 5, 2, 'x0', 'latent-rgb'], ['denoise', 4, 5, 4, 'latents', 'latent-rgb']], `scaling ${scaling}`);
    assert.deepEqual(l.events[0]!.images, linearRgb(x0, f as number[][], bias as number[]), `x0 preview, scaling ${scaling}`);
    assert.deepEqual(l.events[1]!.images, linearRgb(lat, f as number[][], bias as number[]), `latents preview, scaling ${scaling}`);
    assert.deepEqual(l.events[0]!.sizes, [[3, 1], [3, 1]]);
  }
});

test('previewHook: pixel space (samples as images), the tiny VAE (row by row, postprocessed), NaN previews dropped, abort', async () => {
  // pixel space: [1, 3, 1, 2] samples in [-1, 1] -> clamp(x / 2 + 0.5) * 255 in float32 steps, as diffusers' numpy postprocess
  const px: Tensor = { shape: [1, 3, 1, 2], data: Float32Array.of(-1, 0.5, 0, 1.5, 0.2, -0.6) };
  const bytes = (t: Tensor, row: number) => { const n = t.shape[2]! * t.shape[3]!, base = row * 3 * n; return Array.from({ length: n * 3 }, (_, j) => rhe(Math.fround(Math.fround(Math.min(Math.max(t.data[base + (j % 3) * n + Math.floor(j / 3)]! / 2 + 0.5, 0), 1)) * 255))); };
  let l = listen();
  let hook = previewHook(ck({ pixel: true, channels: 3 }), { preview: { every: 1 }, onProgress: l.onProgress })!;
  await hook(1, 2, px, px);
  await hook(2, 2, undefined, { shape: px.shape, data: px.data.map((v) => -v) });
  await hook(3, 3, { shape: px.shape, data: px.data.map((v, i) => (i === 2 ? Number.NaN : v)) }, px); // dropped
  assert.deepEqual(l.events.map((e) => [e.top, e.total, e.source, e.decoder]), [[1, 2, 'x0', 'pixels'], [2, 2, 'latents', 'pixels']]);
  assert.deepEqual(l.events[0]!.images, [bytes(px, 0)]);
  assert.deepEqual(l.events[1]!.images, [bytes({ shape: px.shape, data: px.data.map((v) => -v) }, 0)]);
  assert.deepEqual(l.events[0]!.sizes, [[2, 1]]);

  // the tiny VAE: each row decoded on its own to [1, 3, 1, 2] (values from the row's first latent)
  const decoded: number[][] = [];
  const decoder = {
    scaleFactor: 8,
    async decode(t: Tensor) {
      decoded.push([...t.shape, ...Array.from(t.data)]);
      const a = t.data[0]!;
      return { shape: [1, 3, 1, 2], data: Float32Array.of(a, -a, 0.5 * a, 0.1, Number.isNaN(t.data[1]!) ? Number.NaN : -0.3, 2 * a) };
    },
  } as unknown as PreviewOptions['decoder'];
  l = listen();
  hook = previewHook(ck({ channels: 3, scaling: null }), { preview: { every: 3, decoder }, onProgress: l.onProgress })!;
  const z: Tensor = { shape: [2, 2, 1, 1], data: Float32Array.of(0.4, 1, -0.8, 2) };
  await hook(1, 6, z, z);
  await hook(3, 6, z, z);
  await hook(6, 6, { shape: [2, 2, 1, 1], data: Float32Array.of(0.4, 1, -0.8, Number.NaN) }, z); // row 2 decodes to NaN: dropped
  assert.deepEqual(decoded, [[1, 2, 1, 1, 0.4, 1], [1, 2, 1, 1, -0.8, 2], [1, 2, 1, 1, Math.fround(0.4), 1], [1, 2, 1, 1, Math.fround(-0.8), Number.NaN]].map((r) => r.map((v) => (Number.isNaN(v) ? v : Math.fround(v)))));
  assert.deepEqual(l.events.map((e) => [e.top, e.total, e.source, e.decoder]), [[3, 6, 'x0', 'tiny-vae']]);
  const row = (a: number) => bytes({ shape: [1, 3, 1, 2], data: Float32Array.of(a, -a, 0.5 * a, 0.1, -0.3, 2 * a) }, 0);
  assert.deepEqual(l.events[0]!.images, [row(Math.fround(0.4)), row(Math.fround(-0.8))]);
  assert.deepEqual(l.events[0]!.sizes, [[2, 1], [2, 1]]);

  // abort: the preview is not reported, the run stops
  const ac = new AbortController();
  l = listen();
  hook = previewHook(ck({ pixel: true }), { preview: { every: 1 }, onProgress: l.onProgress, signal: ac.signal })!;
  await hook(1, 2, px, px);
  ac.abort();
  await assert.rejects(hook(2, 2, px, px), (e: unknown) => e instanceof Error && e.name === 'AbortError');
  assert.equal(l.events.length, 1);
  // a dropped (NaN) preview returns before the abort check
  await hook(2, 2, { shape: px.shape, data: px.data.map(() => Number.NaN) }, px);
});
