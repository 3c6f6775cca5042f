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

const M = 'tiny-sdxl';

/** The method with its attention switched off (StyleAligned's query/key AdaIN too) and no latent preprocessing. */
function inactive(m: ReferenceMethod): ReferenceMethod {
  return { ...m, queryKeyAdain: false, scoreShift: 0, weights: () => ({ cond: PLAIN, uncond: PLAIN }), initialLatents: (noise) => noise, adjustNoise: undefined };
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
