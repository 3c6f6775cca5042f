/**
 * asyrpLossAndGrads on a pixel-space, unconditional model (tiny-ddpm's weights behind the stand-in checkpoint of
 * train-attribute-stand-ins, no context, no VAE): L = lambda_dir L_dir + lambda_1 L_1 for two lambda pairs in one
 * process. The objective is compiled once per cache key, so a key that forgot the lambdas would answer the later
 * calls with the first call's graph; and a bad scheduler config is refused naming its file.
 * A few seconds (mutation slice methods-numeric).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { asyrpLossAndGrads, type DeltaParams } from '../src/methods/asyrp-training.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { initialDeltaBlock } from '../src/pipelines/train-attribute.js';
import type { Tensor } from '../src/tensor.js';
import { ck, clip, initByHand, SD, TEXT_DIM } from './train-attribute-stand-ins.js';

test('Asyrp objective on a pixel-space unconditional model: L = lambda_dir L_dir + lambda_1 L_1, each lambda pair its own graph', async () => {
  const c = ck([], true);
  const tower = towerOfCLIPModel(clip([], true));
  const cfg = { channels: 64, tembChannels: 128, groups: 32, eps: 1e-6 };
  const init = initByHand(64, 128, 4);
  const params = Object.fromEntries(Object.entries(initialDeltaBlock(cfg, 0)).map(([n, t]) => [n, { shape: t.shape, data: Float32Array.from(init[n]!) }])) as DeltaParams;
  const xt: Tensor = { shape: [1, 3, 8, 8], data: Float32Array.from({ length: 192 }, (_, i) => Math.sin(i * 0.61)) };
  const direction: Tensor = { shape: [1, TEXT_DIM], data: Float32Array.from({ length: TEXT_DIM }, (_, i) => Math.cos(i * 0.9)) };
  const sample = { xt, timestep: 334, direction };
  const near = (a: number, b: number, what: string): void => assert.ok(Math.abs(a - b) <= 1e-5 * Math.max(1, Math.abs(b)), `${what}: ${a} vs ${b}`);

  const d = await asyrpLossAndGrads(c, tower, cfg, params, sample);
  assert.ok(d.l1 > 1e-4 && Number.isFinite(d.dir) && d.dir !== 0, `L_1 ${d.l1}, L_dir ${d.dir}`);
  near(d.loss, d.dir + 3 * d.l1, 'defaults (1, 3)');
  const noL1 = await asyrpLossAndGrads(c, tower, cfg, params, sample, { lambdaL1: 0 });
  near(noL1.dir, d.dir, 'L_dir');
  near(noL1.l1, d.l1, 'L_1');
  near(noL1.loss, d.dir, 'lambda_1 0');
  // The first key again (its graph is cached), but the checkpoint's scheduler config is bad: refused naming its file.
  const bad = { ...c, schedulerConfig: () => ({ raw: { ...SD, beta_schedule: 'cosine' }, file: 'stand-in/scheduler_config.json' }) } as unknown as typeof c;
  await assert.rejects(asyrpLossAndGrads(bad, tower, cfg, params, sample), { message: 'stand-in/scheduler_config.json [beta_schedule]: expected one of linear, scaled_linear, squaredcos_cap_v2, got "cosine"' });
});
