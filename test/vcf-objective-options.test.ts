/**
 * The aligner objective is compiled once per process and key: lambda_rec and tau must be part of that key.
 * Runs with other options come first, so a graph cached under the wrong key would answer the default run.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ALIGNER_PARAMS, type AlignerParams } from '../src/methods/vcf/aligner.js';
import { alignerLossAndGrads } from '../src/methods/vcf/objective.js';
import type { Tensor } from '../src/tensor.js';
import { golden, goldenInts } from './helpers.js';

const SHAPE = { dv: 32, hidden: 64, dt: 32 };

test('VCF objective: lambda_rec 0.5 gives L_nce + 0.5 L_rec, tau 0.2 changes only L_nce; the default run after them equals the golden, explicit defaults too', async () => {
  const g = golden('grads', 'vcf_aligner');
  const mask = goldenInts('grads', 'vcf_aligner', 'attention_mask');
  const batch = { imageTokens: g.Y!, textTokens: g.T!, pooledText: g.t!, attentionMask: { shape: mask.shape, data: Float32Array.from(mask.data) } as Tensor };
  const params = Object.fromEntries(ALIGNER_PARAMS.map((n) => [n, g[`aligner.${n}`]!])) as AlignerParams;
  const nce = g.L_nce!.data[0]!, rec = g.L_rec!.data[0]!;
  const half = await alignerLossAndGrads(SHAPE, params, batch, { lambdaRec: 0.5 });
  assert.ok(Math.abs(half.nce - nce) < 1e-5 && Math.abs(half.rec - rec) < 1e-5, `lambda 0.5: terms ${half.nce}, ${half.rec}`);
  assert.ok(Math.abs(half.loss - (nce + 0.5 * rec)) < 1e-5, `lambda 0.5: L ${half.loss} vs ${nce + 0.5 * rec}`);
  const warm = await alignerLossAndGrads(SHAPE, params, batch, { tau: 0.2 });
  assert.ok(Math.abs(warm.rec - rec) < 1e-5, `tau 0.2: L_rec ${warm.rec}`);
  assert.ok(Math.abs(warm.nce - nce) > 1e-2, `tau 0.2: L_nce ${warm.nce} must differ from tau 0.07's ${nce}`);
  assert.ok(Math.abs(warm.loss - (warm.nce + warm.rec)) < 1e-5);
  const plain = await alignerLossAndGrads(SHAPE, params, batch);
  assert.ok(Math.abs(plain.nce - nce) < 1e-5, `default L_nce ${plain.nce} vs golden ${nce}`);
  assert.ok(Math.abs(plain.loss - g.L!.data[0]!) < 1e-5, `default L ${plain.loss} vs golden ${g.L!.data[0]}`);
  // The defaults given explicitly are the same objective (and must not pick up the graphs compiled above).
  for (const o of [{ lambdaRec: 1 }, { tau: 0.07 }]) {
    const r = await alignerLossAndGrads(SHAPE, params, batch, o);
    assert.ok(Math.abs(r.loss - g.L!.data[0]!) < 1e-5 && Math.abs(r.nce - nce) < 1e-5, `${JSON.stringify(o)}: L ${r.loss}, L_nce ${r.nce}`);
  }
});
