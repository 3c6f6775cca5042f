import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { Graph, type Value } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { unet2DConfig, unet2DModel } from '../src/models/unet2d.js';
import { tensor } from '../src/tensor.js';
import { close, golden, modelDir } from './helpers.js';

test('UNet2DModel (pixel DDPM) parity with diffusers: output and every stored intermediate', async () => {
  const dir = path.join(modelDir('tiny-ddpm'), 'unet');
  const cfg = unet2DConfig(Config.read(path.join(dir, 'config.json')));
  const vb = new WeightsView(openComponentWeights(dir));
  const gold = golden('tiny-ddpm', 'unet');
  const g = new Graph();
  const x = g.input('x', gold.x_t!.shape);
  const t = g.input('t', [2]);
  const taps = new Map<string, Value>();
  g.output('noise_pred', unet2DModel(x, t, vb, cfg, { tap: (n, v) => { if (gold[n] && !taps.has(n)) taps.set(n, v); } }));
  for (const [n, v] of taps) g.output(n, v);
  const r = await runOnce(g, { x: gold.x_t!, t: tensor([2], [725, 38]) });
  const expected = Object.keys(gold).filter((k) => !k.startsWith('single.') && !['x0', 'noise', 'timesteps', 'x_t'].includes(k));
  assert.deepEqual(expected.filter((k) => !r[k]), []);
  const errs = Object.keys(r).map((k) => [k, close(r[k]!, gold[k]!, 5e-5, k)] as const).sort((a, b) => b[1] - a[1]);
  console.log(`tiny-ddpm unet: ${errs.length} tensors, worst ${errs.slice(0, 2).map(([k, e]) => `${k} ${e.toExponential(1)}`).join(', ')}`);
});
