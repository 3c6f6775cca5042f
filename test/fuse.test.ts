import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { readImageRGB } from '../src/io/image.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { fuse } from '../src/methods/vcf/fusion.js';
import { alignedImageTokens, fuseGenerate } from '../src/pipelines/fuse.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-fuse-'));
function alignerFile(): string {
  const g = readAllFloat32(goldenPath('grads', 'vcf_aligner.safetensors'));
  const f = path.join(tmp, 'aligner.safetensors');
  writeSafetensors(f, Object.fromEntries(['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((n) => [n, g[`aligner.${n}`]!])));
  return f;
}

test('VCF fusion: aligned tokens of the reference equal the golden; concat/average/cross-attention shapes and definitions', async () => {
  const g = golden('grads', 'pno');
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const yh = await alignedImageTokens(ck, alignerFile(), await readImageRGB(goldenPath('grads', 'pno_reference.png')));
  const err = close(yh, g['c.aligned_image_tokens']!, 1e-4, 'aligned image tokens');
  const emb = g['c.prompt_embeds']!, u = g['u.prompt_embeds']!;
  const concat = fuse('concat', emb, yh, u);
  assert.deepEqual(concat.cond.shape, [1, 127, 32]);
  close(concat.cond, g.c!, 1e-4, 'c = [T; Yh]');
  close(concat.uncond, g.u!, 0, 'u = [T(""); 0]');
  const avg = fuse('average', emb, yh, u);
  assert.deepEqual(avg.cond.shape, [1, 77, 32]);
  const mean0 = Array.from({ length: 50 }, (_, j) => yh.data[j * 32]!).reduce((a, b) => a + b) / 50;
  assert.ok(Math.abs(avg.cond.data[0]! - (emb.data[0]! + mean0) / 2) < 1e-6);
  assert.deepEqual(fuse('cross-attention', emb, yh, u).cond.shape, [1, 77, 32]);
  console.log(`vcf aligned tokens max abs err ${err.toExponential(1)}`);
});

test('fuse with Prompt-Noise Optimization lowers the CLIP distance to the reference', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const reference = await readImageRGB(goldenPath('grads', 'pno_reference.png'));
  const r = await fuseGenerate(ck, {
    aligner: alignerFile(), reference, prompt: 'a photograph of a cat', steps: 2, guidance: 5, pnoSteps: 6, pnoLr: 0.05,
    tower: towerOfCLIPModel(CLIPModel.open(modelDir('tiny-clip'))), noise: new TorchGenerator(5121),
  });
  const l = r.pnoLosses[0]!;
  assert.equal(l.length, 6);
  assert.ok(l[5]! < 0.7 * l[0]!, `PNO loss ${l}`);
  assert.equal(r.images.length, 1);
  console.log(`PNO loss ${l.map((x) => x.toFixed(4)).join(' ')}`);
});
