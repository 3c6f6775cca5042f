import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Graph, type Value } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { tensor } from '../src/tensor.js';
import { close, golden, MODELS, modelDir } from './helpers.js';

for (const m of MODELS) {
  test(`UNet2DConditionModel parity with diffusers (${m}): output and every stored intermediate`, async () => {
    const dir = path.join(modelDir(m), 'unet');
    const cfg = unetConfig(Config.read(path.join(dir, 'config.json')));
    const vb = new WeightsView(openComponentWeights(dir));
    const gold = golden(m, 'unet');
    const g = new Graph();
    const sample = g.input('sample', gold.latents!.shape);
    const timestep = g.input('timestep', [2]);
    const ehs = g.input('encoder_hidden_states', gold.encoder_hidden_states!.shape);
    const taps = new Map<string, Value>();
    const out = unet2DConditionModel({ sample, timestep, encoderHiddenStates: ehs }, vb, cfg, { tap: (name, v) => { if (gold[name]) taps.set(name, v); } });
    g.output('noise_pred', out);
    for (const [name, v] of taps) g.output(name, v);
    const r = await runOnce(g, { sample: gold.latents!, timestep: tensor([2], [801, 41]), encoder_hidden_states: gold.encoder_hidden_states! });
    const errs: [string, number][] = [];
    for (const k of Object.keys(r)) errs.push([k, close(r[k]!, gold[k]!, 5e-5, k)]);
    const expected = Object.keys(gold).filter((k) => !k.startsWith('single.') && !['latents', 'timesteps', 'encoder_hidden_states'].includes(k));
    assert.deepEqual(expected.filter((k) => !r[k]), [], 'every golden intermediate is reachable through a tap');
    errs.sort((a, b) => b[1] - a[1]);
    console.log(`${m} unet: ${errs.length} tensors, worst ${errs.slice(0, 3).map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ')}; noise_pred ${errs.find(([k]) => k === 'noise_pred')![1].toExponential(1)}`);
  });
}

test('an unsupported block type in a config names the file, the key and the allowed types', () => {
  const raw = JSON.parse(fs.readFileSync(path.join(modelDir('tiny-sd15'), 'unet', 'config.json'), 'utf8')) as Record<string, unknown>;
  raw.down_block_types = ['CrossAttnDownBlock2D', 'SimpleCrossAttnDownBlock2D', 'DownBlock2D'];
  assert.throws(() => unetConfig(new Config('unet/config.json', raw as never)), /unet\/config\.json \[down_block_types\]: block type SimpleCrossAttnDownBlock2D is not supported \(expected one of CrossAttnDownBlock2D, DownBlock2D\)/);
});
