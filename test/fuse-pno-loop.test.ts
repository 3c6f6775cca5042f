/**
 * fuseGenerate's Prompt-Noise Optimization loop (src/pipelines/fuse.ts) with the tiny SD 1.5 UNet and VAE (PNO
 * differentiates through them) but stand-ins for everything else: the text conditioner, the image encoder and a
 * CLIP tower whose features are the per-channel mean of the CLIP-normalised pixels (the reference's features are
 * worked out by hand here). The loop is written out in the test: per image, Adam on (z_T, c) from pnoLossAndGrads,
 * then DDIM sampling from the optimized pair; losses, callbacks, progress and latents must match. One UNet step,
 * 8 x 8 latents: a few seconds (the pipelines mutation slice's file for fuse.ts's PNO branch).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint, type Checkpoint } from '../src/components/checkpoint.js';
import { PromptEmbeddings } from '../src/components/prompt-conditioner.js';
import type { Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import type { RGBImage } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { pnoLossAndGrads } from '../src/methods/vcf/pno.js';
import { alignedImageTokens, fuseGenerate } from '../src/pipelines/fuse.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { Adam } from '../src/training/optimizers.js';
import type { Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';

const DV = 4, DT = 32, L = 2;
const real = openCheckpoint(modelDir('tiny-sd15'));
const textOf = (s: string | null): number[] => Array.from({ length: L * DT }, (_, i) => (s === null ? 0 : Math.sin(i * 0.7 + s.length) * 0.5));

function ck(texts: (string | null)[][]): Checkpoint {
  const conditioner = { async encode(t: (string | null)[]) { texts.push(t); return new PromptEmbeddings({ shape: [t.length, L, DT], data: Float32Array.from(t.flatMap(textOf)) }, undefined, [], null); } };
  const imageEncoder = { id: 'stand-in', config: { hiddenSize: DV }, async encode(images: RGBImage[]) { return { lastHiddenState: { shape: [1, 2, DV], data: Float32Array.from(images[0]!.data.subarray(0, 8), (v) => v / 64 - 2) } }; } };
  return {
    path: 'fuse-pno-loop', unet: () => real.unet(), vae: () => real.vae(), autoencoder: () => real.autoencoder(), conditioner: () => conditioner,
    imageEncoder: () => imageEncoder, release: async () => {}, schedulerConfig: () => real.schedulerConfig(), isPixelSpace: () => false,
  } as unknown as Checkpoint;
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-fuse-pno-'));
function alignerFile(): string {
  const f = path.join(tmp, 'aligner.safetensors');
  const t = (shape: number[], s: number) => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => Math.cos(i * 1.1 + s) * 0.3) });
  writeSafetensors(f, { 'norm.weight': t([DV], 1), 'norm.bias': t([DV], 2), 'fc1.weight': t([3, DV], 3), 'fc1.bias': t([3], 4), 'fc2.weight': t([DT, 3], 5), 'fc2.bias': t([DT], 6) });
  return f;
}

// The tower: CLIP pixels at 8 x 8 (the reference is 8 x 8: the bilinear resize keeps it), features = per-channel mean.
const MEAN = [0.5, 0.4, 0.3], STD = [0.25, 0.2, 0.5];
const tower = { id: 'mean-tower', imageSize: 8, mean: MEAN, std: STD, features: (px: Value) => op.reduceMean(px, [2, 3], false) };
const REF: RGBImage = { width: 8, height: 8, data: Uint8Array.from({ length: 192 }, (_, i) => (i * 29 + 5) % 256) } as RGBImage;
/** By hand: ((byte / 255) - mean_c) / std_c averaged over the 64 pixels. */
const refFeatures = (): Tensor => ({ shape: [1, 3], data: Float32Array.from([0, 1, 2], (c) => Array.from({ length: 64 }, (_, i) => (REF.data[i * 3 + c]! / 255 - MEAN[c]!) / STD[c]!).reduce((s, v) => s + v, 0) / 64) });

function near(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i]! - want[i]!) <= tol, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

test('fuse with PNO: per image, Adam on (z_T, c) for --pno-steps iterations, then sampling from the optimized pair', async () => {
  const texts: (string | null)[][] = [];
  const file = alignerFile();
  const latents: Tensor = { shape: [2, 4, 8, 8], data: Float32Array.from({ length: 512 }, (_, j) => Math.sin(j * 0.37)) };
  const seen: [number, number, number][] = [], pno: string[] = [];
  const o = { aligner: file, reference: REF, prompt: 'a cat', steps: 1, guidance: 3, numImages: 2, latents, width: 32, height: 32, pnoSteps: 2, pnoLr: 0.05, tower };
  const r = await fuseGenerate(ck(texts), { ...o, onPnoLoss: (i, it, l) => seen.push([i, it, l]), onProgress: (e) => { if (e.stage === 'pno') pno.push(`${e.step}/${e.total}${e.detail ? ` ${e.detail}` : ''}`); } });
  assert.deepEqual(texts, [['a cat', null]]);

  // The loop by hand.
  const yh = await alignedImageTokens(ck([]), file, REF);
  const c0 = Float32Array.from([...textOf('a cat'), ...yh.data]), u: Tensor = { shape: [1, L + 2, DT], data: new Float32Array((L + 2) * DT) };
  const reference = refFeatures();
  const losses: number[][] = [], finals: number[] = [];
  for (let i = 0; i < 2; i++) {
    const vars = { z: { shape: [1, 4, 8, 8], data: latents.data.slice(i * 256, (i + 1) * 256) }, c: { shape: [1, L + 2, DT], data: c0.slice() } };
    const adam = new Adam({ lr: 0.05 });
    const trace: number[] = [];
    for (let it = 0; it < 2; it++) {
      const g = await pnoLossAndGrads(ck([]), tower, { zT: vars.z, c: vars.c, u, steps: 1, guidance: 3, reference });
      trace.push(g.loss);
      adam.step(vars, { z: g.gradZT, c: g.gradC });
    }
    losses.push(trace);
    const s = await textToImage(ck([]), { scheduler: 'ddim', prompt: 'a cat', steps: 1, guidance: 3, latents: vars.z, width: 32, height: 32,
      embeddings: { cond: new PromptEmbeddings(vars.c, undefined, [], null), uncond: new PromptEmbeddings(u, undefined, [], null) } });
    finals.push(...s.latents.data);
  }
  // (the reference's features by hand differ from the graph's float32 ones in the 7th digit)
  assert.deepEqual(r.pnoLosses.map((t) => t.length), [2, 2]);
  near(r.pnoLosses.flat(), losses.flat(), 1e-6, 'PNO losses');
  assert.ok(losses.flat().every((l) => l > 1e-4 && l < 2), `losses ${losses}`);
  assert.notEqual(losses[0]![0], losses[0]![1], 'the second iteration starts from updated variables');
  const got = r.pnoLosses;
  assert.deepEqual(seen, [[0, 0, got[0]![0]!], [0, 1, got[0]![1]!], [1, 0, got[1]![0]!], [1, 1, got[1]![1]!]]);
  assert.deepEqual(pno, ['0/4', `1/4 loss ${got[0]![0]!.toFixed(4)}`, '2/4', `3/4 loss ${got[1]![0]!.toFixed(4)}`, '4/4']);
  assert.deepEqual(r.latents.shape, [2, 4, 8, 8]);
  near(r.latents.data, finals, 1e-5, 'final latents');
  // rows differ: each image kept its own optimized noise
  assert.ok(Math.abs(r.latents.data[0]! - r.latents.data[256]!) > 1e-3);
  assert.equal(r.images.length, 2);
  assert.deepEqual([r.images[1]!.width, r.images[1]!.height], [32, 32]);

  // no callbacks, the default learning rate 1e-2, one image, one iteration
  const row0: Tensor = { shape: [1, 4, 8, 8], data: latents.data.slice(0, 256) };
  const r1 = await fuseGenerate(ck([]), { ...o, numImages: 1, latents: row0, pnoSteps: 1, pnoLr: undefined });
  near(r1.pnoLosses.flat(), [losses[0]![0]!], 1e-6, 'first loss');
  const vars = { z: { shape: [1, 4, 8, 8], data: row0.data.slice() }, c: { shape: [1, L + 2, DT], data: c0.slice() } };
  const g = await pnoLossAndGrads(ck([]), tower, { zT: vars.z, c: vars.c, u, steps: 1, guidance: 3, reference });
  new Adam({ lr: 1e-2 }).step(vars, { z: g.gradZT, c: g.gradC });
  const s1 = await textToImage(ck([]), { scheduler: 'ddim', prompt: 'a cat', steps: 1, guidance: 3, latents: vars.z, width: 32, height: 32,
    embeddings: { cond: new PromptEmbeddings(vars.c, undefined, [], null), uncond: new PromptEmbeddings(u, undefined, [], null) } });
  near(r1.latents.data, s1.latents.data, 1e-5, 'default lr final latents');
});
