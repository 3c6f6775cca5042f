// z_0 = mean * scaling_factor in float32 arithmetic, as torch multiplies a float32 tensor by a Python float
// (the scalar rounded to float32 first): bit for bit diffusers' `latent_dist.mean * 0.18215`.
import test from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { scaleLatents } from '../src/components/latent-scaling.js';
import { golden, modelDir } from './helpers.js';

const mismatches = (a: Float32Array, b: Float32Array): number => a.reduce((n, v, i) => n + (v === b[i] ? 0 : 1), 0);

test('scaleLatents equals torch latent_dist.mean * scaling_factor bit for bit (float32 product, scalar rounded to float32)', () => {
  const g = golden('tiny-sd15', 'vae');
  const mean = g['latent_dist.mean']!, want = g['scaled_mean']!.data;
  assert.equal(mismatches(scaleLatents(mean, 0.18215).data, want), 0);
  // The golden tells the two roundings apart: the double product misses about 40% of the elements by one ulp.
  assert.ok(mismatches(Float32Array.from(mean.data, (v) => v * 0.18215), want) > 100);
});

test('VAE.encodeToLatents scales the encoder mean as torch does', async () => {
  const vae = openCheckpoint(modelDir('tiny-sd15')).vae();
  const image = golden('tiny-sd15', 'vae')['image']!;
  const { mean } = await vae.encode(image);
  assert.deepEqual((await vae.encodeToLatents(image)).data, scaleLatents(mean, vae.config.scalingFactor).data);
});
