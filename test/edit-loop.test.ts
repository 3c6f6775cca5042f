/**
 * Asyrp editing (src/pipelines/edit.ts) on stand-in checkpoints whose UNet is a known function of each row, so no
 * model runs: the inversion, then which steps are edited (t >= t_edit, with the DeltaBlock variant and the strength
 * feed), which are stochastic (t < t_boost, eta 1 with the seeded noise), the prompt the inversion is conditioned on,
 * pixel output vs VAE decode, resizing, progress and the one-line errors. The final samples are checked against
 * hSpaceSample run here on the inversion's last latent with the plan written out in the test (the pipelines
 * mutation slice's fast file for edit.ts; milliseconds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Checkpoint } from '../src/components/checkpoint.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';
import { FileFormatError, InputError } from '../src/errors.js';
import type { RGBImage } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { loadDeltaBlock } from '../src/methods/delta-block.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { samplesToImages } from '../src/pipelines/common.js';
import { edit, type EditOptions } from '../src/pipelines/edit.js';
import { hSpaceSample } from '../src/pipelines/h-space.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import type { Tensor } from '../src/tensor.js';

const SD = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };

interface Call { t: number; b: number; key: string; on?: number[]; strength?: number[]; context: number[]; first: number }

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-edit-loop-'));
/** A DeltaBlock file for an h-space of `c` channels and a `temb`-dim time embedding (values never read by the stand-in). */
function deltaFile(c: number, temb: number, name = `delta-${c}-${temb}.safetensors`): string {
  const f = path.join(tmp, name);
  const t = (shape: number[]): Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => 0.01 * i) });
  writeSafetensors(f, {
    'conv_in.weight': t([c, c, 1, 1]), 'conv_in.bias': t([c]), 'temb_proj.weight': t([c, temb]), 'temb_proj.bias': t([c]),
    'norm.weight': t([c]), 'norm.bias': t([c]), 'conv_out.weight': t([c, c, 1, 1]), 'conv_out.bias': t([c]),
  });
  return f;
}

/**
 * The stand-in: eps = 0.1 x + 0.02 + 0.01 c (c: the row's first text value) on plain rows; edited rows (the second
 * half of a call with feeds) add 0.05 x strength. blockOutChannels [2, 3, 5]: h-space 5 channels, time embedding 8.
 * Pixel space: 3 x 4 x 4 samples. Latent: 32 x 32 images, latents = every 8th pixel ([1, 3, 4, 4]).
 */
function ck(calls: Call[], o: { latent?: boolean; conditional?: boolean; texts?: (string | null)[][]; decoded?: number[] } = {}): Checkpoint {
  const unet = {
    conditional: o.conditional ?? false,
    arch: { unet: { blockOutChannels: [2, 3, 5] } },
    async run(a: { sample: Tensor; timestep: number; encoderHiddenStates?: Tensor; variant?: { key: string }; feeds?: Record<string, Tensor> }) {
      const b = a.sample.shape[0]!, n = a.sample.data.length / b;
      const fd = a.feeds;
      calls.push({
        t: a.timestep, b, key: a.variant?.key ?? '', context: a.encoderHiddenStates ? Array.from(a.encoderHiddenStates.data) : [], first: a.sample.data[0]!,
        ...(fd ? { on: Array.from(fd['hspace_on']!.data), strength: Array.from(fd['hspace_strength']!.data) } : {}),
      });
      if (fd) assert.deepEqual(Object.keys(fd).sort(), ['hspace_on', 'hspace_strength']);
      const c = (r: number): number => (a.encoderHiddenStates ? a.encoderHiddenStates.data[r * (a.encoderHiddenStates.data.length / b)]! : 0);
      const data = Float32Array.from(a.sample.data, (v, j) => {
        const r = Math.floor(j / n);
        return 0.1 * v + 0.02 + 0.01 * c(r) + (fd ? fd['hspace_on']!.data[r]! * 0.05 * fd['hspace_strength']!.data[r]! : 0);
      });
      const h = { shape: [b, 5, 1, 1], data: new Float32Array(b * 5) };
      return { noisePred: { shape: a.sample.shape, data }, extra: fd ? { mid_block: h, 'mid_block.edited': h } : {} };
    },
  };
  const vae = {
    scaleFactor: 8,
    async encodeToLatents(px: Tensor) { return { shape: [1, 3, 4, 4], data: Float32Array.from({ length: 48 }, (_, j) => px.data[Math.floor(j / 16) * 1024 + Math.floor((j % 16) / 4) * 256 + (j % 4) * 8]!) }; },
    async decode(t: Tensor) { o.decoded?.push(t.data[0]!); return { shape: [1, 3, 32, 32], data: new Float32Array(3 * 1024).fill(t.data[0]! > 0 ? 0.5 : -0.5) }; },
  };
  const TEXT: Record<string, number> = { '': 1, 'a cat': 4 };
  const conditioner = { async encode(texts: (string | null)[]) { o.texts?.push(texts); return new PromptEmbeddings({ shape: [texts.length, 1, 1], data: Float32Array.from(texts, (s) => TEXT[s ?? '']!) }, undefined, [], null); } };
  return { unet: () => unet, vae: () => vae, autoencoder: () => vae, conditioner: () => conditioner, isPixelSpace: () => !o.latent, schedulerConfig: () => ({ raw: SD, file: 'scheduler_config.json' }), release: async () => {} } as unknown as Checkpoint;
}

const img = (w: number, h: number): RGBImage => ({ width: w, height: h, data: Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37 + 11) % 256) } as RGBImage);
/** Expected run: the stand-in's inversion (checked by the call table), then hSpaceSample with the plan written here. */
async function expected(o: { image: RGBImage; steps: number; tEdit: number; tBoost: number; strength: number; seed?: number; latent?: boolean; conditional?: boolean }) {
  const calls: Call[] = [];
  const c = ck(calls, { latent: o.latent, conditional: o.conditional });
  const { invert, imageToLatents } = await import('../src/pipelines/invert.js');
  const inv = await invert(c, await imageToLatents(c, o.image), { prompt: '', steps: o.steps });
  return hSpaceSample(c, {
    xT: inv.chain[inv.chain.length - 1]!, context: inv.conditioning, steps: o.steps, edit: { kind: 'delta', weights: undefined as never, config: undefined as never, id: 'x' }, hShape: [1, 5, 1, 1],
    plan: (_i, t) => ({ on: t >= o.tEdit, strength: o.strength }), etaAt: (t) => (t < o.tBoost ? 1 : 0), noise: o.seed === undefined ? undefined : new TorchGenerator(o.seed),
  });
}

test('edit, defaults: 40 inverse steps, edits at t >= 500 with strength 1, eta 1 below t = 200 from the seed; pixel output', async () => {
  const calls: Call[] = [], events: string[] = [];
  const file = deltaFile(5, 8);
  const r = await edit(ck(calls), { image: img(4, 4), attribute: file, noise: new TorchGenerator(7), onProgress: (e: ProgressEvent) => events.push(e.stage) });
  // inversion: 40 plain calls at 1, 26, ..., 976; then sampling 976 ... 1, the 20 steps t >= 500 edited
  const ts = Array.from({ length: 40 }, (_, i) => 1 + 25 * i);
  assert.deepEqual(calls.slice(0, 40).map((c) => [c.t, c.b, c.key]), ts.map((t) => [t, 1, '']));
  const sampling = calls.slice(40);
  assert.deepEqual(sampling.map((c) => c.t), [...ts].reverse());
  assert.deepEqual(sampling.map((c) => (c.key ? 'E' : '.')).join(''), 'E'.repeat(20) + '.'.repeat(20));
  for (const c of sampling.filter((c) => c.key)) {
    assert.equal(c.key, `hspace-delta:${file}`);
    assert.equal(c.b, 2);
    assert.deepEqual([c.on, c.strength], [[0, 1], [0, 1]]);
  }
  const want = await expected({ image: img(4, 4), steps: 40, tEdit: 500, tBoost: 200, strength: 1, seed: 7 });
  assert.deepEqual(r.latents.shape, [1, 3, 4, 4]);
  assert.deepEqual(Array.from(r.latents.data), Array.from(want.data));
  // without the noise below t_boost (eta 0 everywhere) the result differs: the stochastic steps ran
  const eta0 = await expected({ image: img(4, 4), steps: 40, tEdit: 500, tBoost: 0, strength: 1 });
  assert.ok(Math.abs(eta0.data[0]! - want.data[0]!) > 1e-4);
  assert.deepEqual(r.images, samplesToImages(want));
  assert.deepEqual(r.truncatedPrompts, []);
  assert.ok(events.includes('invert') && events.includes('denoise') && events[0] === 'encode', events.join(' '));
});

test('edit: t_edit / t_boost boundaries, strength, steps; the noise rule; errors', async () => {
  const file = deltaFile(5, 8);
  // steps 3: inversion 1, 334, 667; sampling 667, 334, 1. t_edit 334 edits 667 and 334; t_boost 334: eta 1 at t = 1 only
  const calls: Call[] = [];
  const r = await edit(ck(calls), { image: img(4, 4), attribute: file, steps: 3, tEdit: 334, tBoost: 334, strength: -2.5, noise: new TorchGenerator(3) });
  assert.deepEqual(calls.map((c) => [c.t, c.key ? 'E' : '.', c.strength ?? []]), [[1, '.', []], [334, '.', []], [667, '.', []], [667, 'E', [0, -2.5]], [334, 'E', [0, -2.5]], [1, '.', []]]);
  const want = await expected({ image: img(4, 4), steps: 3, tEdit: 334, tBoost: 334, strength: -2.5, seed: 3 });
  assert.deepEqual(Array.from(r.latents.data), Array.from(want.data));
  // t_edit 668: nothing edited; t_boost 0 needs no seed; strength 0
  const c2: Call[] = [];
  const r2 = await edit(ck(c2), { image: img(4, 4), attribute: file, steps: 3, tEdit: 668, tBoost: 0, strength: 0 });
  assert.deepEqual(c2.map((c) => c.key), ['', '', '', '', '', '']);
  assert.deepEqual(Array.from(r2.latents.data), Array.from((await expected({ image: img(4, 4), steps: 3, tEdit: 668, tBoost: 0, strength: 0 })).data));
  // t_boost 1 (> 0) without a seed: refused after the inversion, before sampling
  const c3: Call[] = [];
  await assert.rejects(edit(ck(c3), { image: img(4, 4), attribute: file, steps: 3, tBoost: 1 }),
    (e: unknown) => e instanceof InputError && e.message === '--t-boost > 0 adds noise below it: give --seed (or --t-boost 0)');
  assert.equal(c3.length, 3);
  await assert.rejects(edit(ck([]), { image: img(4, 4), attribute: file, steps: 3 }), /--t-boost > 0 adds noise/);
  const bad = (o: Partial<EditOptions>, msg: string) => assert.rejects(edit(ck([]), { image: img(4, 4), attribute: file, steps: 3, tBoost: 0, ...o }), (e: unknown) => e instanceof InputError && e.message === msg);
  await bad({ strength: Number.NaN }, '--strength must be a number, got NaN');
  await bad({ strength: Infinity }, '--strength must be a number, got Infinity');
  await bad({ tEdit: 1000 }, '--t-edit must be an integer timestep in [0, 1000), got 1000');
  await bad({ tBoost: -1 }, '--t-boost must be an integer timestep in [0, 1000), got -1');
  await bad({ tBoost: 2.5 }, '--t-boost must be an integer timestep in [0, 1000), got 2.5');
  // the attribute file must fit the h-space (5 channels) and the time embedding (2 x 4 = 8)
  await assert.rejects(edit(ck([]), { image: img(4, 4), attribute: deltaFile(3, 8), steps: 3, tBoost: 0 }), (e: unknown) => e instanceof FileFormatError && /3 input channels but this UNet's h-space has 5/.test(e.message));
  await assert.rejects(edit(ck([]), { image: img(4, 4), attribute: deltaFile(5, 20), steps: 3, tBoost: 0 }), (e: unknown) => e instanceof FileFormatError && /20-dim time embedding but this UNet's is 8-dim/.test(e.message));
  assert.equal(loadDeltaBlock(file, 5, 8).config.channels, 5);
  // the h-space grid needs sizes divisible by 4 (three levels)
  await assert.rejects(edit(ck([]), { image: img(6, 4), attribute: file, steps: 3, tBoost: 0 }), (e: unknown) => e instanceof InputError && e.message === "sample size 6x4 is not divisible by 4 (the UNet's downsampling); resize the image");
});

test('edit, latent model: the image resized to the VAE factor, inversion prompt (given, default "", unconditional ""), decode; abort', async () => {
  const file = deltaFile(5, 8);
  const texts: (string | null)[][] = [], decoded: number[] = [], warnings: string[] = [], calls: Call[] = [], events: string[] = [];
  const r = await edit(ck(calls, { latent: true, conditional: true, texts, decoded }), {
    image: img(36, 33), attribute: file, prompt: 'a cat', steps: 2, tBoost: 0, onWarning: (m) => warnings.push(m), onProgress: (e) => events.push(`${e.stage} ${e.step}/${e.total}`),
  });
  assert.deepEqual(warnings, ['reference image is 36x33; resized to 32x32']);
  assert.deepEqual(texts, [['a cat']]);
  // the sampling is conditioned on the inversion's prompt (4), doubled on edited calls
  assert.deepEqual(calls.map((c) => [c.t, c.context]), [[1, [4]], [501, [4]], [501, [4, 4]], [1, [4]]]);
  assert.equal(r.images.length, 1);
  assert.deepEqual(decoded, [r.latents.data[0]!]);
  assert.deepEqual([r.images[0]!.width, r.images[0]!.height], [32, 32]);
  assert.ok(events.includes('decode 0/1') && events.includes('decode 1/1'), events.join(', '));
  // no prompt: ""; an unconditional latent model: "" even with a prompt
  const t2: (string | null)[][] = [];
  await edit(ck([], { latent: true, conditional: true, texts: t2 }), { image: img(32, 32), attribute: file, steps: 2, tBoost: 0 });
  await edit(ck([], { latent: true, conditional: false, texts: t2 }), { image: img(32, 32), attribute: file, prompt: 'a cat', steps: 2, tBoost: 0 });
  assert.deepEqual(t2, [[''], ['']]);
  // the signal reaches the sampling: aborted while step 1 is reported, the run stops after that (edited) step
  const ac = new AbortController();
  const c4: Call[] = [];
  await assert.rejects(edit(ck(c4), { image: img(4, 4), attribute: file, steps: 2, tBoost: 0, signal: ac.signal, onProgress: (e) => { if (e.stage === 'denoise') ac.abort(); } }),
    (e: unknown) => e instanceof Error && e.name === 'AbortError');
  assert.deepEqual(c4.map((c) => [c.t, c.b]), [[1, 1], [501, 1], [501, 2]]);
});
