import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB } from '../src/io/image.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { concatRows } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-sdxl';
const meta = (name: string) => JSON.parse(fs.readFileSync(goldenPath(M, `${name}.json`), 'utf8')) as { prompt: string; negative_prompt?: string; num_inference_steps: number; guidance_scale: number; width: number; height: number };

test('SDXL text-to-image (DDIM, CFG 5, explicit negative prompt) parity: every step and the image', async () => {
  const m = meta('pipeline_t2i_ddim'), g = golden(M, 'pipeline_t2i_ddim');
  const steps: number[] = [];
  const r = await textToImage(openCheckpoint(modelDir(M)), {
    prompt: m.prompt, negativePrompt: m.negative_prompt, steps: m.num_inference_steps, guidance: m.guidance_scale, width: m.width, height: m.height,
    latents: g.latents_in, scheduler: 'ddim',
    onStepEnd: (i, _t, z) => { steps.push(close(z, g[`step_${i}.latents_after`]!, 1e-4, `step ${i}`)); },
  });
  const err = close(r.latents, g.final_latents!, 1e-4, 'final latents');
  // image_np: [1, H, W, 3] in [0, 1] before the uint8 conversion (round(x * 255))
  const img = g.image_np!;
  let levels = 0;
  for (let i = 0; i < img.data.length; i++) levels = Math.max(levels, Math.abs(r.images[0]!.data[i]! - Math.round(img.data[i]! * 255)));
  assert.ok(levels <= 1, `uint8 image within 1 level (${levels})`);
  console.log(`tiny-sdxl t2i ddim: final latents ${err.toExponential(1)}, worst step ${Math.max(...steps).toExponential(1)}, image ${levels} levels`);
});

test('SDXL DDIM inversion parity (time ids [h, w, 0, 0, h, w], pooled text): the chain', async () => {
  const m = meta('ddim_inversion'), g = golden(M, 'ddim_inversion');
  const inv = await invert(openCheckpoint(modelDir(M)), await readImageRGB(goldenPath(M, 'inversion_input.png')), { prompt: m.prompt, steps: m.num_inference_steps });
  const chain = concatRows(inv.chain);
  // Tolerance: the contract's 1e-3. This UNet amplifies input differences ~90x on this image's latents
  // (a 1e-6 change of z_0 moves eps at t=1 by 8.6e-5), so float32 rounding differences from torch grow
  // to ~1e-4 over 5 steps; eps from the golden z_0 differs by 9.3e-5 (relative 4e-5).
  const err = close({ shape: g.chain!.shape, data: chain.data }, g.chain!, 1e-3, 'chain');
  console.log(`tiny-sdxl ddim inversion chain: ${err.toExponential(1)}`);
});

test('SDXL text-to-image (Euler, CFG 5, NO negative prompt: force_zeros_for_empty_prompt -> zero uncond embeddings) parity', async () => {
  // The bug bank's held-out set found no test of the missing-negative-prompt path of the pipeline (a "" instead of
  // None passed to the conditioner passed every test); this official golden has negative_prompt None.
  const m = meta('pipeline_t2i_euler'), g = golden(M, 'pipeline_t2i_euler');
  assert.equal(m.negative_prompt, null);
  const r = await textToImage(openCheckpoint(modelDir(M)), {
    prompt: m.prompt, steps: m.num_inference_steps, guidance: m.guidance_scale, width: m.width, height: m.height, latents: g.latents_in,
  });
  const err = close(r.latents, g.final_latents!, 1e-4, 'final latents');
  console.log(`tiny-sdxl t2i euler, no negative prompt: final latents ${err.toExponential(1)}`);
});
