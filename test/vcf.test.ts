import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALIGNER_PARAMS, type AlignerParams } from '../src/methods/vcf/aligner.js';
import { alignerLossAndGrads } from '../src/methods/vcf/objective.js';
import { Adam } from '../src/training/optimizers.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { golden, goldenInts } from './helpers.js';

const G = 'grads';

function batch() {
  const g = golden(G, 'vcf_aligner');
  const mask = goldenInts(G, 'vcf_aligner', 'attention_mask');
  return { imageTokens: g.Y!, textTokens: g.T!, pooledText: g.t!, attentionMask: { shape: mask.shape, data: Float32Array.from(mask.data) } as Tensor };
}
const initial = (): AlignerParams => {
  const g = golden(G, 'vcf_aligner');
  return Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, { shape: g[`aligner.${n}`]!.shape, data: g[`aligner.${n}`]!.data.slice() }])) as AlignerParams;
};

test('VCF aligner objective: losses and every parameter gradient equal the golden (autograd)', async () => {
  const g = golden(G, 'vcf_aligner');
  const r = await alignerLossAndGrads({ dv: 32, hidden: 64, dt: 32 }, initial(), batch());
  assert.ok(Math.abs(r.nce - g.L_nce!.data[0]!) < 1e-5, `L_nce ${r.nce}`);
  assert.ok(Math.abs(r.rec - g.L_rec!.data[0]!) < 1e-5, `L_rec ${r.rec}`);
  assert.ok(Math.abs(r.loss - g.L!.data[0]!) < 1e-5, `L ${r.loss}`);
  const rel: string[] = [];
  for (const n of ALIGNER_PARAMS) {
    const want = g[`grad.${n}`]!;
    const scale = Math.max(...want.data.map(Math.abs));
    const e = maxAbsDiff(r.grads[n], want) / scale;
    rel.push(`${n} ${e.toExponential(1)}`);
    assert.ok(e < 1e-5, `grad ${n}: max rel err ${e}`);
  }
  console.log(`vcf aligner: L ${r.loss} (golden ${g.L!.data[0]}); grad max|err|/max|grad|: ${rel.join(', ')}`);
});

test('VCF aligner: 3 Adam steps (lr 1e-3) reproduce torch.optim.Adam, losses included', async () => {
  const g = golden(G, 'vcf_aligner');
  const p = initial();
  const adam = new Adam({ lr: 1e-3 });
  const losses: number[] = [];
  for (let k = 1; k <= 3; k++) {
    const r = await alignerLossAndGrads({ dv: 32, hidden: 64, dt: 32 }, p, batch());
    losses.push(r.loss);
    adam.step(p, r.grads);
    for (const n of ALIGNER_PARAMS) assert.ok(maxAbsDiff(p[n], g[`adam.step${k}.${n}`]!) < 1e-5, `step ${k} ${n}: ${maxAbsDiff(p[n], g[`adam.step${k}.${n}`]!)}`);
  }
  assert.ok(maxAbsDiff(Float32Array.from(losses), g['adam.loss']!.data) < 1e-5);
  const after = await alignerLossAndGrads({ dv: 32, hidden: 64, dt: 32 }, p, batch());
  assert.ok(Math.abs(after.loss - g['adam.loss_after_step3']!.data[0]!) < 1e-5);
});
