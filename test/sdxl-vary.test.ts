import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB } from '../src/io/image.js';
import { createMethod, type ReferenceMethod } from '../src/methods/index.js';
import { PLAIN } from '../src/methods/reference-attention.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { inject } from '../src/pipelines/inject.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary } from '../src/pipelines/vary.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { goldenPath, modelDir } from './helpers.js';
import { tinySdxlWithImageEncoder } from './model-fixtures.js';
import path from 'node:path';
import os from 'node:os';
import fs from 'node:fs';
import { ControlNet } from '../src/components/controlnet.js';
import { Config } from '../src/io/config.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { openComponentWeights, WeightsView, type TensorSource } from '../src/io/weights.js';
import { controlNetConfig } from '../src/models/controlnet.js';
import { fuseGenerate } from '../src/pipelines/fuse.js';

const M = 'tiny-sdxl';

/** The method with its attention switched off (StyleAligned's query/key AdaIN too) and no latent preprocessing. */
function inactive(m: ReferenceMethod): ReferenceMethod {
  // (and no shared GroupNorm statistics, no official-run settings: plain DDIM from the model's scheduler)
  return {
    ...m, queryKeyAdain: false, scoreShift: 0, scoreScale: 1, sharedGroupNorm: false, run: undefined,
    weights: () => ({ cond: PLAIN, uncond: PLAIN }), initialLatents: (noise) => noise, adjustNoise: undefined,
  };
}

for (const name of ['indetail-ip', 'kv-concat', 'kv-replace', 'style-aligned'] as const) {
  test(`SDXL ${name}: inactive it is plain text-to-image bit for bit (negative prompt absent -> zeros); active it changes the output`, async () => {
    const ck = openCheckpoint(modelDir(M));
    const reference = await readImageRGB(goldenPath(M, 'inversion_input.png'));
    const steps = 3, k = 2;
    const latents: Tensor = { shape: [k, 4, 16, 16], data: new TorchGenerator(7).randn([k, 4, 16, 16]) };
    const base = { reference, prompt: 'a cat', inversionPrompt: 'a photo of a cat', steps, guidance: 6, numImages: k, latents };
    const method = createMethod(name, steps, { startStep: 1, startLayer: 3, stratifiedSteps: 1 });
    const off = await vary(ck, { ...base, method: inactive(method) });
    const plain = await textToImage(ck, { scheduler: 'ddim', prompt: 'a cat', steps, guidance: 6, numImages: k, latents, width: 64, height: 64, latentsOnly: true });
    const dOff = maxAbsDiff(off.latents, plain.latents);
    assert.equal(dOff, 0, `inactive ${name} differs from plain text-to-image by ${dOff}`);
    const on = await vary(ck, { ...base, method });
    const dOn = maxAbsDiff(on.latents, plain.latents);
    assert.ok(dOn > 1e-3, `active ${name} changed the latents by only ${dOn}`);
    console.log(`sdxl ${name}: inactive vs plain ${dOff}, active vs plain ${dOn.toExponential(2)}, ${on.rowsPerStep} UNet rows per step`);
  });
}

test('SDXL InjectFusion (h-space = the mid block): gamma 0 is the plain reconstruction; gamma > 0 changes it', async () => {
  const ck = openCheckpoint(modelDir(M));
  const original = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const content: typeof original = { width: 64, height: 64, data: original.data.map((v, i) => (v * 7 + i) % 256) };
  const o = { original, content, steps: 4, tEdit: 300, tNoise: 0, noise: new NativeGaussian(1), onWarning: () => {} };
  const inv = await invert(ck, original, { prompt: '', steps: 4 });
  const plain = await textToImage(ck, { scheduler: 'ddim', prompt: '', steps: 4, guidance: 1, latents: inv.chain[4]!, latentsOnly: true, width: 64, height: 64 });
  const g0 = await inject(ck, { ...o, gamma: 0 });
  assert.equal(maxAbsDiff(g0.latents, plain.latents), 0, 'gamma 0');
  const g1 = await inject(ck, { ...o, gamma: 0.8 });
  assert.ok(maxAbsDiff(g1.latents, plain.latents) > 1e-4, 'injection changes the result');
});


test('SDXL fuse (VCF concat fusion): the aligned image tokens join the SDXL token embeddings; the pooled text is kept', async () => {
  const ck = tinySdxlWithImageEncoder();
  const rnd = new NativeGaussian(4);
  const w = (shape: number[], s: number) => ({ shape, data: rnd.randn(shape).map((v) => v * s) });
  const aligner = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sdxl-fuse-')), 'aligner.safetensors');
  writeSafetensors(aligner, { 'norm.weight': { shape: [32], data: new Float32Array(32).fill(1) }, 'norm.bias': w([32], 0.1), 'fc1.weight': w([16, 32], 0.2), 'fc1.bias': w([16], 0.1), 'fc2.weight': w([64, 16], 0.2), 'fc2.bias': w([64], 0.1) });
  const reference = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const latents: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(5).randn([1, 4, 16, 16]) };
  const r = await fuseGenerate(ck, { aligner, reference, prompt: 'a cat', steps: 2, guidance: 5, latents, fusion: 'concat' });
  const plain = await textToImage(ck, { scheduler: 'ddim', prompt: 'a cat', steps: 2, guidance: 5, latents, latentsOnly: true });
  assert.ok(r.latents.data.every(Number.isFinite));
  assert.ok(maxAbsDiff(r.latents, plain.latents) > 1e-4, 'the reference tokens change the result');
});

/** A ControlNet for tiny-sdxl: its encoder copied from the UNet (time, add_embedding, down, mid), condition embedding and zero convs random. */
function tinySdxlControlNet(): ControlNet {
  const unetDir = path.join(modelDir(M), 'unet');
  const raw = { ...Config.read(path.join(unetDir, 'config.json')).raw, _class_name: 'ControlNetModel', conditioning_embedding_out_channels: [8, 16, 16] };
  const cfg = controlNetConfig(new Config('controlnet/config.json', raw));
  const base = openComponentWeights(unetDir);
  const rnd = new NativeGaussian(11);
  const extra = new Map<string, Tensor>();
  const add = (k: string, shape: number[], s: number) => extra.set(k, { shape, data: rnd.randn(shape).map((v) => v * s) });
  const conv = (p: string, o: number, i: number, k: number) => { add(`${p}.weight`, [o, i, k, k], 0.2); add(`${p}.bias`, [o], 0.05); };
  conv('controlnet_cond_embedding.conv_in', 8, 3, 3);
  conv('controlnet_cond_embedding.blocks.0', 8, 8, 3); conv('controlnet_cond_embedding.blocks.1', 16, 8, 3);
  conv('controlnet_cond_embedding.blocks.2', 16, 16, 3); conv('controlnet_cond_embedding.blocks.3', 16, 16, 3);
  conv('controlnet_cond_embedding.conv_out', 32, 16, 3);
  [32, 32, 32, 32, 64, 64, 64, 64, 64].forEach((c, k) => conv(`controlnet_down_blocks.${k}`, c, c, 1));
  conv('controlnet_mid_block', 64, 64, 1);
  const src: TensorSource = {
    origin: 'tiny-sdxl-controlnet',
    keys: () => [...base.keys(), ...extra.keys()],
    has: (k) => extra.has(k) || base.has(k),
    shape: (k) => extra.get(k)?.shape ?? base.shape(k),
    read: (k) => extra.get(k) ?? base.read(k),
  };
  return new ControlNet(cfg, new WeightsView(src), 'tiny-sdxl-controlnet');
}

test('SDXL ControlNet: the added conditioning reaches the ControlNet; scale 0 is plain generation, scale 1 changes it', async () => {
  const ck = openCheckpoint(modelDir(M));
  const net = tinySdxlControlNet();
  assert.deepEqual(net.config.addition, { timeEmbedDim: 8, inputDim: 80 });
  const image: Tensor = { shape: [1, 3, 64, 64], data: new Float32Array(3 * 64 * 64).map((_, i) => (i % 97) / 96) };
  const latents: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(9).randn([1, 4, 16, 16]) };
  const o = { scheduler: 'ddim', prompt: 'a cat', steps: 2, guidance: 5, latents, latentsOnly: true } as const;
  const plain = await textToImage(ck, o);
  const off = await textToImage(ck, { ...o, controls: [{ net, image, scale: 0 }] });
  const on = await textToImage(ck, { ...o, controls: [{ net, image, scale: 1 }] });
  assert.equal(maxAbsDiff(off.latents, plain.latents), 0, 'scale 0');
  assert.ok(maxAbsDiff(on.latents, plain.latents) > 1e-4, 'scale 1 changes the result');
});
