/**
 * --preview-every on the h-space commands (inject, edit) and on fuse, on tiny-sdxl: the previews arrive as
 * progress events every N steps (the server's live previews), they show the step's x0 prediction, and
 * asking for them leaves the result bit for bit unchanged.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB, type RGBImage } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { edit } from '../src/pipelines/edit.js';
import { fuseGenerate } from '../src/pipelines/fuse.js';
import { inject } from '../src/pipelines/inject.js';
import type { ProgressEvent } from '../src/pipelines/progress.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { goldenPath, modelDir } from './helpers.js';
import { tinySdxlWithImageEncoder } from './model-fixtures.js';

const M = 'tiny-sdxl';
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sdxl-previews-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const rnd = new NativeGaussian(9);
const w = (shape: number[], s: number): Tensor => ({ shape, data: rnd.randn(shape).map((v) => v * s) });
/** A DeltaBlock for tiny-sdxl's h-space (64 channels, 128-wide time embedding). */
const ATTRIBUTE = path.join(tmp, 'delta.safetensors');
writeSafetensors(ATTRIBUTE, {
  'conv1.weight': w([64, 64, 1, 1], 0.2), 'conv1.bias': w([64], 0.1), 'temb_proj.weight': w([64, 128], 0.1), 'temb_proj.bias': w([64], 0.1),
  'norm2.weight': { shape: [64], data: new Float32Array(64).fill(1) }, 'norm2.bias': w([64], 0.1), 'conv2.weight': w([64, 64, 1, 1], 0.5), 'conv2.bias': w([64], 0.1),
});

/** Progress events that carry previews. */
function previews(): { events: ProgressEvent[]; onProgress: (e: ProgressEvent) => void } {
  const events: ProgressEvent[] = [];
  return { events, onProgress: (e) => { if (e.preview) events.push(e); } };
}

function checkPreviews(events: ProgressEvent[], steps: number[], total: number, rowsPerEvent: number, size: number): void {
  assert.deepEqual(events.map((e) => e.preview!.step), steps, 'a preview after every N-th step');
  for (const e of events) {
    assert.equal(e.stage, 'denoise');
    assert.equal(e.total, total);
    assert.equal(e.preview!.source, 'x0', 'the x0 prediction, not x_t');
    assert.equal(e.preview!.decoder, 'latent-rgb');
    assert.equal(e.preview!.images.length, rowsPerEvent);
    for (const im of e.preview!.images) assert.deepEqual([im.width, im.height], [size, size]);
  }
}

test('SDXL inject --preview-every: x0 previews every 2 steps as progress events; the result is unchanged', async () => {
  const ck = openCheckpoint(modelDir(M));
  const original = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const content: RGBImage = { width: 64, height: 64, data: original.data.map((v, i) => (v * 7 + i) % 256) };
  const o = { original, content, steps: 4, tEdit: 300, tNoise: 0, gamma: 0.8, noise: new NativeGaussian(1), onWarning: () => {} };
  const plain = await inject(ck, o);
  const p = previews();
  const withPreviews = await inject(ck, { ...o, noise: new NativeGaussian(1), onProgress: p.onProgress, preview: { every: 2 } });
  assert.equal(maxAbsDiff(withPreviews.latents, plain.latents), 0, 'previews do not change the result');
  // tiny-sdxl's VAE downsamples 64 px to 16x16 latents (latent-RGB previews are latent-size).
  checkPreviews(p.events, [2, 4], 4, 1, plain.latents.shape[3]!);
  // an edited step's preview differs from an unedited run's (the injected x0 is shown)
  const q = previews();
  await inject(ck, { ...o, gamma: 0, noise: new NativeGaussian(1), onProgress: q.onProgress, preview: { every: 2 } });
  assert.notDeepEqual(q.events[0]!.preview!.images[0]!.data, p.events[0]!.preview!.images[0]!.data, 'the preview shows the injected x0');
});

test('SDXL edit --preview-every: previews every step; the result is unchanged', async () => {
  const ck = openCheckpoint(modelDir(M));
  const image = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const o = { image, attribute: ATTRIBUTE, steps: 3, strength: 1, tEdit: 300, tBoost: 0 };
  const plain = await edit(ck, o);
  const p = previews();
  const r = await edit(ck, { ...o, onProgress: p.onProgress, preview: { every: 1 } });
  assert.equal(maxAbsDiff(r.latents, plain.latents), 0);
  checkPreviews(p.events, [1, 2, 3], 3, 1, plain.latents.shape[3]!);
});


test('SDXL fuse --preview-every: previews of every image row; the result is unchanged', async () => {
  const ck = tinySdxlWithImageEncoder();
  const aligner = path.join(tmp, 'aligner.safetensors');
  writeSafetensors(aligner, { 'norm.weight': { shape: [32], data: new Float32Array(32).fill(1) }, 'norm.bias': w([32], 0.1), 'fc1.weight': w([16, 32], 0.2), 'fc1.bias': w([16], 0.1), 'fc2.weight': w([64, 16], 0.2), 'fc2.bias': w([64], 0.1) });
  const reference = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const latents: Tensor = { shape: [2, 4, 16, 16], data: new TorchGenerator(5).randn([2, 4, 16, 16]) };
  const o = { aligner, reference, prompt: 'a cat', steps: 2, guidance: 5, latents, numImages: 2, fusion: 'concat' as const };
  const plain = await fuseGenerate(ck, o);
  const p = previews();
  const r = await fuseGenerate(ck, { ...o, onProgress: p.onProgress, preview: { every: 1 } });
  assert.equal(maxAbsDiff(r.latents, plain.latents), 0);
  checkPreviews(p.events, [1, 2], 2, 2, 16);
});

test('CLI inject / edit --preview-every on tiny-sdxl write OUT.preview-stepNNN.png', () => {
  const image = goldenPath(M, 'inversion_input.png');
  for (const [cmd, extra] of [['inject', ['--content', image, '--t-edit', '300']], ['edit', ['--attribute', ATTRIBUTE, '--t-edit', '300', '--t-boost', '0']]] as const) {
    const out = path.join(tmp, `${cmd}.png`);
    const r = spawnSync(process.execPath, [BIN, cmd, '--quiet', '--model', modelDir(M), '--image', image, ...extra, '--steps', '2', '--seed', '3', '--preview-every', '1', '--out', out], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    for (const s of ['001', '002']) assert.ok(fs.existsSync(path.join(tmp, `${cmd}.preview-step${s}.png`)), `${cmd}: preview ${s} written`);
  }
});
