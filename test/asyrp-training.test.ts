import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { asyrpLossAndGrads, type DeltaParams } from '../src/methods/asyrp-training.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { DELTA_PARAMS } from '../src/methods/delta-block.js';
import { maxAbsDiff } from '../src/tensor.js';
import { golden, modelDir } from './helpers.js';

test('Asyrp training objective: L_dir, L_1, L and d L / d every DeltaBlock parameter equal the golden', async () => {
  const g = golden('grads', 'asyrp');
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const tower = towerOfCLIPModel(CLIPModel.open(modelDir('tiny-clip')));
  const params = Object.fromEntries(DELTA_PARAMS.map((n) => [n, g[`deltablock.${n}`]!])) as DeltaParams;
  const direction = { shape: g.E_T_tgt!.shape, data: g.E_T_tgt!.data.map((v, i) => v - g.E_T_src!.data[i]!) };
  const r = await asyrpLossAndGrads(ck, tower, { channels: 64, tembChannels: 128, groups: 32, eps: 1e-6 }, params, { xt: g.x_t!, timestep: 601, context: g.prompt_embeds!, direction });
  assert.ok(Math.abs(r.dir - g.L_dir!.data[0]!) < 1e-4, `L_dir ${r.dir} vs ${g.L_dir!.data[0]}`);
  assert.ok(Math.abs(r.l1 - g.L_1!.data[0]!) < 1e-5, `L_1 ${r.l1} vs ${g.L_1!.data[0]}`);
  assert.ok(Math.abs(r.loss - g.L!.data[0]!) < 1e-4, `L ${r.loss} vs ${g.L!.data[0]}`);
  const rel: string[] = [];
  for (const n of DELTA_PARAMS) {
    const want = g[`grad.${n}`]!;
    const e = maxAbsDiff(r.grads[n], want) / Math.max(...want.data.map(Math.abs));
    rel.push(`${n} ${e.toExponential(1)}`);
    // The golden README: the direction loss is a small difference of CLIP features, ~1e-5 relative float32 deviations expected.
    assert.ok(e < 2e-4, `grad ${n}: max|err|/max|grad| ${e}`);
  }
  console.log(`asyrp: L ${r.loss.toFixed(6)} (golden ${g.L!.data[0]!.toFixed(6)}), L_dir ${r.dir.toFixed(6)}, L_1 ${r.l1.toFixed(6)}; grads ${rel.join(', ')}`);
});
