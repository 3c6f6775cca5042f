/**
 * Self-attention that also looks at a reference row of the same UNet batch — the one graph mechanism
 * behind InDetail-IP, RIVAL-style KV concatenation, MasaCtrl-style KV replacement and StyleAligned.
 *
 * For a row r with reference row p, with A_own = softmax(q k_r^T s) v_r and A_ref = softmax(q k_p^T s) v_p
 * (each its own softmax) and their log-sum-exps L_own, L_ref:
 *   out = w_ref * A_ref + w_own * A_own,
 *   w_ref = fixed_ref + soft * sigmoid(L_ref + shift - L_own),  w_own = fixed_own + soft * sigmoid(L_own - L_ref - shift).
 * soft = 1 is exactly one softmax over the concatenated keys [ref; own] (KV concatenation; with shift, a
 * score shift on the reference logits as StyleAligned); soft = 0 with fixed weights (lP, lG)/(lP + lG) is
 * Stratified Attention; fixed_ref = 1 is KV replacement; fixed_own = 1 is plain self-attention. The
 * weights are graph inputs, so one compiled graph serves every step of every schedule.
 */
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { mergeHeads, splitHeads } from '../graph/nn.js';
import type { AttentionCall, UNetHooks } from '../models/hooks.js';

export interface ReferenceLayout {
  /** For each UNet row, the row whose keys/values it may attend to, or null for plain self-attention. */
  readonly referenceOf: readonly (number | null)[];
  /** Which self-attention layers take part (by diffusers path and by order among attn1 layers). */
  readonly layer: (path: string, index: number) => boolean;
  /** StyleAligned: AdaIN queries and keys toward the reference's before attending. */
  readonly queryKeyAdain?: boolean;
  /** Added to the reference logits inside the concatenated softmax (StyleAligned's log-scale shift). */
  readonly scoreShift?: number;
}

/** Per reference-attending row (in row order): the three weights of the formula above. */
export interface ReferenceWeights {
  readonly fixedRef: number;
  readonly fixedOwn: number;
  readonly soft: number;
}

export const PLAIN: ReferenceWeights = { fixedRef: 0, fixedOwn: 1, soft: 0 };
export const CONCAT: ReferenceWeights = { fixedRef: 0, fixedOwn: 0, soft: 1 };
export const REPLACE: ReferenceWeights = { fixedRef: 1, fixedOwn: 0, soft: 0 };
export function stratified(lambdaP: number, lambdaG: number): ReferenceWeights {
  const s = lambdaP + lambdaG;
  return { fixedRef: lambdaP / s, fixedOwn: lambdaG / s, soft: 0 };
}

export const WEIGHT_INPUTS = ['reference_fixed_ref', 'reference_fixed_own', 'reference_soft'] as const;

export function layoutKey(l: ReferenceLayout, layers: string): string {
  return `ref[${l.referenceOf.map((r) => (r === null ? '-' : r)).join(',')}]${l.queryKeyAdain ? ':adain' : ''}${l.scoreShift ? `:shift${l.scoreShift}` : ''}:${layers}`;
}

/** Graph feeds for the per-row weights of one step. */
export function weightFeeds(perRow: readonly ReferenceWeights[]): Record<string, { shape: number[]; data: Float32Array }> {
  const shape = [perRow.length, 1, 1, 1];
  return {
    reference_fixed_ref: { shape, data: Float32Array.from(perRow.map((w) => w.fixedRef)) },
    reference_fixed_own: { shape, data: Float32Array.from(perRow.map((w) => w.fixedOwn)) },
    reference_soft: { shape, data: Float32Array.from(perRow.map((w) => w.soft)) },
  };
}

/** AdaIN over tokens (axis 1 of [B, N, C]): x normalised per channel, then given the target's mean/std (torch.var: unbiased, eps 1e-5). */
export function adainTokens(x: Value, target: Value, eps = 1e-5): Value {
  const stats = (v: Value): [Value, Value] => {
    const mean = op.reduceMean(v, [1]);
    const n = v.dim(1);
    const varUnbiased = op.mul(op.reduceMean(op.mul(op.sub(v, mean), op.sub(v, mean)), [1]), n / (n - 1));
    return [mean, op.sqrt(op.add(varUnbiased, eps))];
  };
  const [m, s] = stats(x);
  const [tm, ts] = stats(target);
  return op.add(op.mul(op.div(op.sub(x, m), s), ts), tm);
}

/** Hooks that apply the layout to the chosen attn1 layers; declares the weight inputs on `g`. */
export function referenceAttentionHooks(g: Graph, layout: ReferenceLayout): UNetHooks {
  const rows = layout.referenceOf.map((r, i) => ({ i, r })).filter((x): x is { i: number; r: number } => x.r !== null);
  const plainRows = layout.referenceOf.map((r, i) => ({ i, r })).filter((x) => x.r === null).map((x) => x.i);
  if (rows.length === 0) return {};
  const n = rows.length;
  const fixedRef = g.input(WEIGHT_INPUTS[0], [n, 1, 1, 1]);
  const fixedOwn = g.input(WEIGHT_INPUTS[1], [n, 1, 1, 1]);
  const soft = g.input(WEIGHT_INPUTS[2], [n, 1, 1, 1]);
  const shift = layout.scoreShift ?? 0;
  const order = [...plainRows, ...rows.map((x) => x.i)];
  const inverse = order.map((_, j) => order.indexOf(j));
  let index = 0;
  return {
    attention(call: AttentionCall): Value | undefined {
      if (call.kind !== 'attn1') return undefined;
      if (!layout.layer(call.path, index++)) return undefined;
      const { q, k, v, heads, scale } = call;
      const pick = (x: Value, idx: number[]): Value => op.gather(x, 0, idx);
      const own = rows.map((x) => x.i), ref = rows.map((x) => x.r);
      let qs = pick(q, own), ks = pick(k, own);
      const vs = pick(v, own), kr = pick(k, ref), vr = pick(v, ref);
      if (layout.queryKeyAdain) {
        qs = adainTokens(qs, pick(q, ref));
        ks = adainTokens(ks, kr);
      }
      // Own attention through the same fused kernel as plain attention (so weights (0, 1, 0) are the plain model
      // bit for bit); the reference attention and both log-sum-exps explicitly.
      const Q = splitHeads(qs, heads);
      const scores = (kk: Value): Value => op.mul(op.matmul(Q, op.transpose(splitHeads(kk, heads), [0, 1, 3, 2])), scale);
      const sOwn = scores(ks), sRef = scores(kr);
      const aOwn = splitHeads(call.plain(qs, ks, vs), heads);
      const aRef = op.matmul(op.softmax(sRef, -1), splitHeads(vr, heads));
      const d = shift ? op.add(op.sub(op.reduceLogSumExp(sRef, [-1]), op.reduceLogSumExp(sOwn, [-1])), shift) : op.sub(op.reduceLogSumExp(sRef, [-1]), op.reduceLogSumExp(sOwn, [-1]));
      const wRef = op.add(fixedRef, op.mul(soft, op.sigmoid(d)));
      const wOwn = op.add(fixedOwn, op.mul(soft, op.sigmoid(op.neg(d))));
      const mixed = mergeHeads(op.add(op.mul(aRef, wRef), op.mul(aOwn, wOwn)));
      if (plainRows.length === 0) return mixed;
      const plain = call.plain(pick(q, plainRows), pick(k, plainRows), pick(v, plainRows));
      return op.gather(op.concat([plain, mixed], 0), 0, inverse);
    },
  };
}
