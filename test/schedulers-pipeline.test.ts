/**
 * Every scheduler in the full text-to-image pipeline on tiny-sd15 against diffusers'
 * StableDiffusionPipeline (goldens/tiny-sd15/schedulers/<name>.*: 6 steps, CFG 7.5, explicit latents,
 * step noise from torch.Generator().manual_seed(seed) replayed by the torch-compatible source).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { golden, modelDir } from './helpers.js';
import { meta, SCHEDULER_GOLDENS } from './scheduler-goldens.js';

const ck = openCheckpoint(modelDir('tiny-sd15'));

for (const [file, { name, spacing }] of Object.entries(SCHEDULER_GOLDENS)) {
  test(`${file}: tiny-sd15 pipeline final latents match diffusers (--scheduler ${name}${spacing ? ` --timestep-spacing ${spacing}` : ''})`, async () => {
    const p = meta(file).pipeline, g = golden('tiny-sd15', `schedulers/${file}`);
    const seed = Number(/manual_seed\((\d+)\)/.exec(p.call)![1]);
    const ts: number[] = [];
    let maxStep = 0;
    const r = await textToImage(ck, {
      prompt: p.prompt, negativePrompt: p.guidance_scale > 1 ? p.negative_prompt : undefined, steps: p.num_inference_steps, guidance: p.guidance_scale,
      width: p.width, height: p.height, latents: g['pipeline.latents_in']!, noise: new TorchGenerator(seed), scheduler: name, timestepSpacing: spacing, latentsOnly: true,
      onStepEnd: (i, t, x) => {
        ts.push(t);
        // diffusers' callback runs once per entry of timesteps (after each UNet call)
        const want = g[`pipeline.step_${i}.latents_after`];
        if (want) for (let k = 0; k < want.data.length; k++) maxStep = Math.max(maxStep, Math.abs(x.data[k]! - want.data[k]!));
      },
    });
    assert.deepEqual(ts, p.unet_timesteps, 'UNet timesteps');
    const want = g['pipeline.final_latents']!;
    let abs = 0, scale = 0;
    for (let k = 0; k < want.data.length; k++) { abs = Math.max(abs, Math.abs(r.latents.data[k]! - want.data[k]!)); scale = Math.max(scale, Math.abs(want.data[k]!)); }
    console.log(`${file}: final latents max abs err ${abs.toExponential(2)} (relative ${(abs / scale).toExponential(2)}, |x| <= ${scale.toFixed(1)}), per-step max ${maxStep.toExponential(2)}`);
    assert.ok(abs <= 1e-3, `${file}: final latents max abs err ${abs} > 1e-3`);
    assert.ok(abs / scale <= 1e-5, `${file}: relative error ${abs / scale} > 1e-5`);
  });
}
