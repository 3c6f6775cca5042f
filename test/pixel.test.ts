import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { readImageRGB } from '../src/io/image.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { DDPMScheduler } from '../src/schedulers/ddpm.js';
import { concatRows } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const M = 'tiny-ddpm';

test('pixel-space DDIM sampling parity with diffusers (UNet2DModel, clip_sample, set_alpha_to_one default)', async () => {
  const gold = golden(M, 'ddim_sampling');
  const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'ddim_sampling.json'), 'utf8')) as { num_inference_steps: number };
  const ck = openCheckpoint(modelDir(M));
  assert.ok(ck.isPixelSpace());
  const [k, , h, w] = gold.noise!.shape as [number, number, number, number];
  const errs: number[] = [];
  const r = await textToImage(ck, { scheduler: 'ddim', prompt: '', steps: meta.num_inference_steps, numImages: k, width: w, height: h, latents: gold.noise!, onStepEnd: (i, _t, x) => errs.push(close(x, gold[`step_${i}.prev_sample`]!, 1e-4, `step ${i}`)) });
  const fin = close(r.latents, gold.final_sample!, 1e-4, 'final sample');
  const f = (await import('../src/io/safetensors.js')).SafetensorsFile.open(goldenPath(M, 'ddim_sampling.safetensors'));
  const want = f.readInts('images_uint8');
  f.close();
  let worst = 0;
  r.images.forEach((im, i) => { for (let j = 0; j < im.data.length; j++) worst = Math.max(worst, Math.abs(im.data[j]! - want.data[i * im.data.length + j]!)); });
  assert.ok(worst <= 1);
  console.log(`tiny-ddpm ddim: steps ${errs.map((e) => e.toExponential(1)).join(' ')}, final ${fin.toExponential(1)}, uint8 max diff ${worst}`);
});

test('pixel-space DDIM inversion parity (clamped pred_original_sample every step)', async () => {
  const gold = golden(M, 'ddim_inversion');
  const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'ddim_inversion.json'), 'utf8')) as { num_inference_steps: number; timesteps: number[] };
  const inv = await invert(openCheckpoint(modelDir(M)), await readImageRGB(goldenPath(M, 'inversion_input.png')), { prompt: '', steps: meta.num_inference_steps });
  assert.deepEqual(inv.timesteps, meta.timesteps);
  const chain = concatRows(inv.chain);
  const err = close({ shape: [chain.shape[0]!, 1, ...chain.shape.slice(1)], data: chain.data }, gold.chain!, 2e-4, 'chain');
  console.log(`tiny-ddpm inversion chain max abs err ${err.toExponential(1)}`);
});

test('DDPM ancestral step equals the posterior mean + sigma z of Ho et al. (float64 reference)', () => {
  const s = new DDPMScheduler({ num_train_timesteps: 1000, beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02, clip_sample: false, variance_type: 'fixed_small' });
  s.setTimesteps(10);
  assert.deepEqual(s.timesteps, [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]);
  const n = 64;
  const x = new NativeGaussian(1).randn([n]), eps = new NativeGaussian(2).randn([n]), z = new NativeGaussian(3).randn([n]);
  const t = 500, prev = 400;
  const a = s.alphasCumprod[t]!, ap = s.alphasCumprod[prev]!;
  const beta = 1 - a / ap;
  const out = s.step(eps, t, x, { noise: z }).prevSample;
  let worst = 0;
  for (let i = 0; i < n; i++) {
    const x0 = (x[i]! - Math.sqrt(1 - a) * eps[i]!) / Math.sqrt(a);
    const mean = (Math.sqrt(ap) * beta / (1 - a)) * x0 + (Math.sqrt(a / ap) * (1 - ap) / (1 - a)) * x[i]!;
    const want = mean + Math.sqrt(((1 - ap) / (1 - a)) * beta) * z[i]!;
    worst = Math.max(worst, Math.abs(out[i]! - want));
  }
  assert.ok(worst < 1e-5, `DDPM step off by ${worst}`);
  const last = s.step(eps, 0, x, { noise: z }).prevSample; // t = 0 adds no noise and goes to alpha 1
  for (let i = 0; i < n; i++) assert.ok(Math.abs(last[i]! - (x[i]! - Math.sqrt(1 - s.alphasCumprod[0]!) * eps[i]!) / Math.sqrt(s.alphasCumprod[0]!)) < 1e-5);
});
