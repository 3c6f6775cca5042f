/**
 * VCF's alignment loss, as visprompt defines it (no official code exists; the definition matches
 * goldens/grads/vcf_aligner.json):
 *  - InfoNCE on global vectors: gi = normalize(mean_tokens f(Y)), gt = normalize(pooled text t);
 *    logits = gi gt^T / tau; L_nce = (CE(logits, diag) + CE(logits^T, diag)) / 2.
 *  - Cross-attention reconstruction: R = softmax(T f(Y)^T / sqrt(Dt)) f(Y); per-token error
 *    e = sum_d (R - T)^2 / Dt; L_rec = mean over captions of the mean of e over its unmasked tokens.
 *  - L = L_nce + lambda_rec * L_rec.
 */
import type { Value } from '../../graph/ir.js';
import * as op from '../../graph/ops.js';

export interface VcfLossTerms {
  readonly nce: Value;
  readonly rec: Value;
  readonly total: Value;
}

/** x / ||x|| over the last axis (F.normalize; the 1e-12 floor only matters for zero vectors). */
function normalize(x: Value): Value {
  return op.div(x, op.sqrt(op.add(op.reduceSum(op.mul(x, x), [-1]), 1e-24)));
}

/** Mean cross-entropy of each row of `logits` [B, B] against the diagonal. */
function diagonalCrossEntropy(logits: Value): Value {
  const b = logits.dim(0);
  const eye = new Float32Array(b * b);
  for (let i = 0; i < b; i++) eye[i * b + i] = 1;
  const diag = op.reduceSum(op.mul(logits, op.constFloat(logits.graph, [b, b], eye, 'eye')), [1], false);
  return op.reduceMean(op.sub(op.reduceLogSumExp(logits, [1], false), diag), [0], false);
}

/**
 * @param yh aligned image tokens [B, N, Dt]
 * @param text text tokens T [B, L, Dt]
 * @param pooled pooled text t [B, Dt]
 * @param mask text attention mask [B, L] (1 = real token)
 */
export function vcfLoss(yh: Value, text: Value, pooled: Value, mask: Value, o: { tau?: number; lambdaRec?: number } = {}): VcfLossTerms {
  const tau = o.tau ?? 0.07, lambda = o.lambdaRec ?? 1;
  const dt = text.dim(2);
  const gi = normalize(op.reduceMean(yh, [1], false));
  const gt = normalize(pooled);
  const logits = op.div(op.matmul(gi, op.transpose(gt, [1, 0])), tau);
  const nce = op.mul(op.add(diagonalCrossEntropy(logits), diagonalCrossEntropy(op.transpose(logits, [1, 0]))), 0.5);
  const attn = op.softmax(op.mul(op.matmul(text, op.transpose(yh, [0, 2, 1])), 1 / Math.sqrt(dt)), -1);
  const r = op.matmul(attn, yh);
  const diff = op.sub(r, text);
  const e = op.div(op.reduceSum(op.mul(diff, diff), [2], false), dt);
  const perCaption = op.div(op.reduceSum(op.mul(e, mask), [1], false), op.reduceSum(mask, [1], false));
  const rec = op.reduceMean(perCaption, [0], false);
  return { nce, rec, total: op.add(nce, op.mul(rec, lambda)) };
}
