import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB } from '../src/io/image.js';
import { createMethod, type ReferenceMethod } from '../src/methods/index.js';
import { PLAIN } from '../src/methods/reference-attention.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary, type Row } from '../src/pipelines/vary.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { concatRows, maxAbsDiff, rows, type Tensor } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-sd15';
const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'indetail_ip.json'), 'utf8')) as {
  settings: { prompt: string; inv_prompt: string; negative_prompt: string; ddim_step: number; cfg: number; num_samples: number; seed: number; ap_kwargs: { end_stratified_attention: number; lambda_img: number } };
};
const s = meta.settings;

test('InDetail-IP parity with the official code (tiny-sd15): inversion chain, final latents of both samples, images', async () => {
  const gold = golden(M, 'indetail_ip');
  const ck = openCheckpoint(modelDir(M));
  const r = await vary(ck, {
    reference: await readImageRGB(goldenPath(M, 'inversion_input.png')),
    method: createMethod('indetail-ip', s.ddim_step, { stratifiedSteps: s.ap_kwargs.end_stratified_attention, lambdaP: s.ap_kwargs.lambda_img, lambdaG: 1 }),
    prompt: s.prompt, inversionPrompt: s.inv_prompt, negativePrompt: s.negative_prompt, steps: s.ddim_step, guidance: s.cfg,
    numImages: s.num_samples, noise: new TorchGenerator(s.seed),
  });
  const zts = concatRows([...r.inversion.chain].reverse());
  const chainErr = close(zts, gold.zts!, 1e-4, 'zts');
  const latErr = close(r.latents, rows(gold.final_latents!, 1, 1 + s.num_samples), 1e-4, 'final latents');
  assert.equal(r.rowsPerStep, 2 * s.num_samples + 1, 'conflict-free guidance runs 2K+1 UNet rows (official: 2K+2)');
  console.log(`indetail-ip: zts max abs err ${chainErr.toExponential(1)}, final latents ${latErr.toExponential(1)}`);
});

test('InDetail-IP images match the official uint8 output within 1 level', async () => {
  const f = (await import('../src/io/safetensors.js')).SafetensorsFile.open(goldenPath(M, 'indetail_ip.safetensors'));
  const want = f.readInts('images_uint8');
  f.close();
  const ck = openCheckpoint(modelDir(M));
  const gold = golden(M, 'indetail_ip');
  const { decodeLatents } = await import('../src/pipelines/common.js');
  const images = await decodeLatents(ck.vae(), rows(gold.final_latents!, 1, 1 + s.num_samples));
  let worst = 0;
  images.forEach((im, i) => { for (let j = 0; j < im.data.length; j++) worst = Math.max(worst, Math.abs(im.data[j]! - want.data[i * im.data.length + j]!)); });
  assert.ok(worst <= 1, `uint8 differs by ${worst}`);
});

/** The method with its attention switched off (StyleAligned's query/key AdaIN too) and no latent preprocessing. */
function inactive(m: ReferenceMethod): ReferenceMethod {
  // (and no shared GroupNorm statistics, no official-run settings: plain DDIM from the model's scheduler)
  return {
    ...m, queryKeyAdain: false, scoreShift: 0, scoreScale: 1, sharedGroupNorm: false, run: undefined,
    weights: () => ({ cond: PLAIN, uncond: PLAIN }), initialLatents: (noise) => noise, adjustNoise: undefined,
  };
}

for (const name of ['indetail-ip', 'kv-concat', 'kv-replace', 'style-aligned'] as const) {
  test(`${name}: inactive it is plain text-to-image; active it changes the output`, async () => {
    const ck = openCheckpoint(modelDir(M));
    const reference = await readImageRGB(goldenPath(M, 'inversion_input.png'));
    const steps = 3, k = 2;
    const latents: Tensor = { shape: [k, 4, 16, 16], data: new TorchGenerator(7).randn([k, 4, 16, 16]) };
    const base = { reference, prompt: 'a cat', inversionPrompt: 'a photo of a cat', negativePrompt: 'blurry', steps, guidance: 6, numImages: k, latents };
    const method = createMethod(name, steps, { startStep: 1, startLayer: 3, stratifiedSteps: 1 });
    const off = await vary(ck, { ...base, method: inactive(method) });
    const plain = await textToImage(ck, { prompt: 'a cat', negativePrompt: 'blurry', steps, guidance: 6, numImages: k, latents, width: 64, height: 64, latentsOnly: true });
    const dOff = maxAbsDiff(off.latents, plain.latents);
    assert.ok(dOff <= 1e-6, `inactive ${name} differs from plain text-to-image by ${dOff}`);
    const on = await vary(ck, { ...base, method });
    const dOn = maxAbsDiff(on.latents, plain.latents);
    assert.ok(dOn > 1e-3, `active ${name} changed the latents by only ${dOn}`);
    console.log(`${name}: inactive vs plain ${dOff.toExponential(1)}, active vs plain ${dOn.toExponential(2)}`);
  });
}

test('conflict-free and conflicting guidance differ only in the unconditional branch', async () => {
  const ck = openCheckpoint(modelDir(M));
  const reference = await readImageRGB(goldenPath(M, 'inversion_input.png'));
  const latents: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(3).randn([1, 4, 16, 16]) };
  const outputs: Record<string, { cond: Tensor; uncond: Tensor }> = {};
  for (const mode of ['conflict-free', 'conflicting'] as const) {
    await vary(ck, {
      reference, prompt: 'a cat', steps: 2, guidance: 5, latents, method: createMethod('indetail-ip', 2, { guidanceMode: mode, stratifiedSteps: 1 }),
      onUNetOutput: (i, layout: readonly Row[], pred) => {
        if (i !== 0) return;
        const at = (branch: Row['branch']) => rows(pred, layout.findIndex((r) => r.kind === 'gen' && r.branch === branch));
        outputs[mode] = { cond: at('cond'), uncond: at('uncond') };
      },
    });
  }
  const dCond = maxAbsDiff(outputs['conflict-free']!.cond, outputs.conflicting!.cond);
  const dUncond = maxAbsDiff(outputs['conflict-free']!.uncond, outputs.conflicting!.uncond);
  assert.ok(dCond <= 1e-6, `conditional branch differs by ${dCond}`);
  assert.ok(dUncond > 1e-4, `unconditional branch should differ, differs by ${dUncond}`);
});
