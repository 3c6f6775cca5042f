import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Graph, type Value } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { guidanceScaleEmbedding } from '../src/models/added-embedding.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { maxAbsDiff, tensor } from '../src/tensor.js';
import { close, golden, modelDir, rowOf } from './helpers.js';

const M = 'tiny-sdxl';

test('SDXL UNet (text_time added conditioning, per-block heads, 2 transformer layers) parity: output and every intermediate', async () => {
  const dir = path.join(modelDir(M), 'unet');
  const cfg = unetConfig(Config.read(path.join(dir, 'config.json')));
  assert.deepEqual(cfg.transformerLayersPerBlock, [1, 1, 2]);
  assert.deepEqual(cfg.addition, { timeEmbedDim: 8, inputDim: 80 });
  const vb = new WeightsView(openComponentWeights(dir));
  const gold = golden(M, 'unet');
  const g = new Graph();
  const sample = g.input('sample', gold.latents!.shape);
  const timestep = g.input('timestep', [2]);
  const ehs = g.input('encoder_hidden_states', gold.encoder_hidden_states!.shape);
  const textEmbeds = g.input('text_embeds', gold.text_embeds!.shape);
  const timeIds = g.input('time_ids', gold.time_ids!.shape);
  const taps = new Map<string, Value>();
  const out = unet2DConditionModel({ sample, timestep, encoderHiddenStates: ehs, addedCond: { textEmbeds, timeIds } }, vb, cfg, { tap: (name, v) => { if (gold[name]) taps.set(name, v); } });
  g.output('noise_pred', out);
  for (const [name, v] of taps) g.output(name, v);
  const r = await runOnce(g, { sample: gold.latents!, timestep: gold.timesteps!, encoder_hidden_states: gold.encoder_hidden_states!, text_embeds: gold.text_embeds!, time_ids: gold.time_ids! });
  const errs: [string, number][] = [];
  for (const k of Object.keys(r)) errs.push([k, close(r[k]!, gold[k]!, 5e-5, k)]);
  const expected = Object.keys(gold).filter((k) => !k.startsWith('single.') && !['latents', 'timesteps', 'encoder_hidden_states', 'text_embeds', 'time_ids'].includes(k));
  assert.deepEqual(expected.filter((k) => !r[k]), [], 'every golden intermediate is reachable through a tap');
  errs.sort((a, b) => b[1] - a[1]);
  console.log(`tiny-sdxl unet: ${errs.length} tensors, worst ${errs.slice(0, 3).map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ')}; noise_pred ${errs.find(([k]) => k === 'noise_pred')![1].toExponential(1)}`);
});

test('SDXL UNet component: batch 1 with an integer timestep (single.noise_pred), added conditioning required', async () => {
  const gold = golden(M, 'unet');
  const unet = openCheckpoint(modelDir(M)).unet();
  const { noisePred } = await unet.run({ sample: rowOf(gold.latents!, 1), timestep: 500, encoderHiddenStates: rowOf(gold.encoder_hidden_states!, 1), addedCond: { textEmbeds: rowOf(gold.text_embeds!, 1), timeIds: rowOf(gold.time_ids!, 1) } });
  const err = close(noisePred, gold['single.noise_pred']!, 5e-5, 'single.noise_pred');
  console.log(`tiny-sdxl single: ${err.toExponential(1)}`);
  await assert.rejects(unet.run({ sample: rowOf(gold.latents!, 1), timestep: 500, encoderHiddenStates: rowOf(gold.encoder_hidden_states!, 1) }), /needs added conditioning/);
});

test('guidance-scale embedding (LCM time_cond_proj_dim) equals diffusers get_guidance_scale_embedding on a hand-checked case', () => {
  // w = 8.5 -> (w - 1) * 1000 = 7500; dim 4: half 2, f = [1, exp(-ln 10000 / 1) = 1e-4] -> [sin 7500, sin 0.75, cos 7500, cos 0.75].
  const e = guidanceScaleEmbedding(8.5, 4);
  const want = [Math.sin(7500), Math.sin(0.75), Math.cos(7500), Math.cos(0.75)];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(e[i]! - want[i]!) < 2e-4, `${i}: ${e[i]} vs ${want[i]}`);
  // odd widths are zero-padded
  const odd = guidanceScaleEmbedding(2, 5);
  assert.equal(odd.length, 5);
  assert.equal(odd[4], 0);
});

test('a UNet with time_cond_proj_dim takes the guidance embedding as an input, and it changes the output', async () => {
  // tiny-sdxl's UNet with a cond_proj added (random weights): the LCM-distilled shape.
  const dir = path.join(modelDir(M), 'unet');
  const raw = JSON.parse(fs.readFileSync(path.join(dir, 'config.json'), 'utf8')) as Record<string, unknown>;
  raw.time_cond_proj_dim = 16;
  const cfg = unetConfig(new Config('unet/config.json', raw as never));
  const base = openComponentWeights(dir);
  const w = new Float32Array(32 * 16).map((_, i) => Math.sin(i) * 0.05);
  const vb = new WeightsView({
    origin: dir,
    keys: () => [...base.keys(), 'time_embedding.cond_proj.weight'],
    has: (k: string) => k === 'time_embedding.cond_proj.weight' || base.has(k),
    shape: (k: string) => (k === 'time_embedding.cond_proj.weight' ? [32, 16] : base.shape(k)),
    read: (k: string) => (k === 'time_embedding.cond_proj.weight' ? { shape: [32, 16], data: w } : base.read(k)),
  });
  const gold = golden(M, 'unet');
  const run = async (guidance: number) => {
    const g = new Graph();
    const x = g.input('sample', gold.latents!.shape);
    const t = g.input('timestep', [2]);
    const c = g.input('encoder_hidden_states', gold.encoder_hidden_states!.shape);
    const te = g.input('text_embeds', gold.text_embeds!.shape), ti = g.input('time_ids', gold.time_ids!.shape);
    const tc = g.input('timestep_cond', [2, 16]);
    g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c, addedCond: { textEmbeds: te, timeIds: ti }, timestepCond: tc }, vb, cfg));
    const emb = guidanceScaleEmbedding(guidance, 16);
    const cond = tensor([2, 16], [...emb, ...emb]);
    return (await runOnce(g, { sample: gold.latents!, timestep: gold.timesteps!, encoder_hidden_states: gold.encoder_hidden_states!, text_embeds: gold.text_embeds!, time_ids: gold.time_ids!, timestep_cond: cond })).noise_pred!;
  };
  const a = await run(1), b = await run(8);
  // guidance 1 embeds w' = 0: [sin 0.., cos 0..] = [0 x 8, 1 x 8], not zero, so it differs from the plain UNet too.
  assert.ok(maxAbsDiff(a, b) > 1e-4, `guidance embedding changes the prediction (${maxAbsDiff(a, b)})`);
  assert.ok(maxAbsDiff(a, gold.noise_pred!) > 1e-4, 'cond_proj contributes');
});
