/**
 * Prompt-Noise Optimization on SDXL: the UNet calls of the differentiated chain carry the added
 * conditioning (pooled text + time ids of the [u; c] rows), in both the checkpointed and whole-graph
 * gradients; a directional finite difference checks the gradient; fuse --pno-steps runs on tiny-sdxl.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIPModel } from '../src/components/clip-model.js';
import { concatEmbeddings, defaultMicroConditioning } from '../src/components/prompt-conditioner.js';
import { readImageRGB } from '../src/io/image.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { pnoLossAndGrads, type PnoProblem } from '../src/methods/vcf/pno.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { fuseGenerate } from '../src/pipelines/fuse.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { goldenPath, modelDir } from './helpers.js';
import { tinySdxlWithImageEncoder } from './model-fixtures.js';

const M = 'tiny-sdxl';

const sdxlWithImageEncoder = tinySdxlWithImageEncoder;

const dot = (a: Float32Array, b: Float32Array): number => a.reduce((s, v, i) => s + v * b[i]!, 0);

test('SDXL PNO gradients: the added conditioning reaches every UNet call; checkpointed = whole graph; finite differences agree', async () => {
  const ck = sdxlWithImageEncoder();
  const tower = towerOfCLIPModel(CLIPModel.open(modelDir('tiny-clip')));
  const emb = await ck.conditioner().encode(['a cat', null]);
  const added = concatEmbeddings([emb.rows(1), emb.rows(0)]).conditioning(defaultMicroConditioning(32, 32)).addedCond!;
  const zT: Tensor = { shape: [1, 4, 8, 8], data: new TorchGenerator(2).randn([1, 4, 8, 8]) };
  const reference: Tensor = { shape: [1, 32], data: new NativeGaussian(5).randn([1, 32]) }; // tiny-clip's projection_dim
  const p: PnoProblem = { zT, c: emb.rows(0).embeds, u: emb.rows(1).embeds, steps: 2, guidance: 5, reference, added };
  const a = await pnoLossAndGrads(ck, tower, p, { checkpointing: true });
  const b = await pnoLossAndGrads(ck, tower, p, { checkpointing: false });
  assert.ok(Number.isFinite(a.loss) && a.gradZT.data.every(Number.isFinite) && a.gradC.data.every(Number.isFinite));
  assert.ok(Math.abs(a.loss - b.loss) < 1e-5, `loss ${a.loss} vs ${b.loss}`);
  const scale = Math.max(...a.gradZT.data.map(Math.abs));
  assert.ok(maxAbsDiff(a.gradZT, b.gradZT) <= 1e-3 * scale, `grad z_T: checkpointed vs whole graph ${maxAbsDiff(a.gradZT, b.gradZT)} (max ${scale})`);
  assert.ok(maxAbsDiff(a.gradC, b.gradC) <= 1e-3 * Math.max(...a.gradC.data.map(Math.abs)), 'grad c');
  // d/de loss(z_T + e g) at 0 = |g|^2 (g = grad z_T), central differences.
  const g = a.gradZT.data, n2 = dot(g, g), e = 0.05 / Math.sqrt(n2);
  const at = async (s: number) => (await pnoLossAndGrads(ck, tower, { ...p, zT: { shape: zT.shape, data: zT.data.map((v, i) => v + s * e * g[i]!) } }, { checkpointing: false })).loss;
  const fd = (await at(1) - await at(-1)) / (2 * e);
  console.log(`SDXL PNO: loss ${a.loss.toFixed(6)}; |dz| checkpointed vs whole ${maxAbsDiff(a.gradZT, b.gradZT).toExponential(1)}; directional derivative ${fd.toExponential(4)} vs |g|^2 ${n2.toExponential(4)}`);
  assert.ok(Math.abs(fd - n2) <= 0.05 * n2, `finite difference ${fd} vs ${n2}`);
  // without the added conditioning the gradients differ (it is used, not ignored)
  await assert.rejects(pnoLossAndGrads(ck, tower, { ...p, added: undefined }, { checkpointing: true }), /needs added conditioning/);
});

test('SDXL fuse --pno-steps: runs, the loss trace is finite, the result differs from plain fusion', async () => {
  const ck = sdxlWithImageEncoder();
  const rnd = new NativeGaussian(4);
  const w = (shape: number[], s: number) => ({ shape, data: rnd.randn(shape).map((v) => v * s) });
  const aligner = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sdxl-pno-')), 'aligner.safetensors');
  writeSafetensors(aligner, { 'norm.weight': { shape: [32], data: new Float32Array(32).fill(1) }, 'norm.bias': w([32], 0.1), 'fc1.weight': w([16, 32], 0.2), 'fc1.bias': w([16], 0.1), 'fc2.weight': w([64, 16], 0.2), 'fc2.bias': w([64], 0.1) });
  const reference = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const latents: Tensor = { shape: [1, 4, 8, 8], data: new TorchGenerator(5).randn([1, 4, 8, 8]) };
  const o = { aligner, reference, prompt: 'a cat', steps: 2, guidance: 5, latents, width: 32, height: 32, fusion: 'concat' as const, tower: towerOfCLIPModel(CLIPModel.open(modelDir('tiny-clip'))) };
  const plain = await fuseGenerate(ck, o);
  const r = await fuseGenerate(ck, { ...o, pnoSteps: 2, pnoLr: 0.1 });
  assert.equal(r.pnoLosses.length, 1);
  assert.equal(r.pnoLosses[0]!.length, 2);
  assert.ok(r.pnoLosses[0]!.every(Number.isFinite));
  assert.ok(maxAbsDiff(r.latents, plain.latents) > 1e-4, 'PNO changes the result');
  assert.equal(r.images.length, 1);
});
