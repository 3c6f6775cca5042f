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
import { engineDevice } from '../graph/session.js';
import { naiveKernels } from '../graph/software-gpu.js';
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
  /** Multiplies the reference keys a row attends to (StyleAligned's shared_score_scale; default 1). */
  readonly scoreScale?: number;
  /**
   * StyleAligned's shared GroupNorm: every UNet GroupNorm of a row takes its statistics over the row and
   * its reference concatenated along H (a row without reference: itself twice, i.e. its own statistics).
   */
  readonly sharedGroupNorm?: boolean;
  /**
   * Rows whose UNet output the caller does not read (vary's reference rows when nothing reads their noise
   * prediction): once no later hooked layer reads their keys and values they are dropped from the batch
   * (UNetHooks.keepRows) and come back as zeros. Only rows that attend to no reference; ignored with sharedGroupNorm.
   */
  readonly unreadRows?: readonly number[];
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
  return `ref[${l.referenceOf.map((r) => (r === null ? '-' : r)).join(',')}]${l.queryKeyAdain ? ':adain' : ''}${l.scoreShift ? `:shift${l.scoreShift}` : ''}`
    + `${l.scoreScale !== undefined && l.scoreScale !== 1 ? `:scale${l.scoreScale}` : ''}${l.sharedGroupNorm ? ':gn' : ''}`
    + `${unreadOf(l).length ? `:unread${unreadOf(l).join(',')}` : ''}:${layers}`;
}

/** The rows the hooks may drop (see ReferenceLayout.unreadRows). */
function unreadOf(l: ReferenceLayout): number[] {
  if (l.sharedGroupNorm || !l.unreadRows) return [];
  for (const r of l.unreadRows) {
    if (!(Number.isInteger(r) && r >= 0 && r < l.referenceOf.length) || l.referenceOf[r] !== null) throw new Error(`reference attention: unread row ${r} is not a row without reference`);
  }
  return [...new Set(l.unreadRows)].sort((a, b) => a - b);
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

/**
 * StyleAligned's register_shared_norm for GroupNorm: norm(concat([x, x_ref], H)) sliced back to x's H rows,
 * so the group statistics cover both images while the affine stays per channel.
 */
export function sharedGroupNorm(referenceOf: readonly (number | null)[]): NonNullable<UNetHooks['groupNorm']> {
  const style = referenceOf.map((r, i) => r ?? i);
  return ({ x, norm }) => op.slice(norm(op.concat([x, op.gather(x, 0, style)], 2)), 2, 0, x.dim(2));
}

/**
 * x[:, :L] with L = x's length when some row's weight is nonzero, else 1 (decided at run time from the weight
 * input): the attention term it feeds is then multiplied by 0 in every row, so one key (a finite result) is
 * enough. The IR keeps the static shape; only ONNX Runtime sees the shorter tensor (consumed by the fused kernel only).
 */
function keysIfUsed(x: Value, weight: Value): Value {
  return rowKeysIfUsed(x, null, weight);
}

const keyLengths = new WeakMap<Graph, Map<string, Value>>();

/** [n] when some row's weight is nonzero, else [1] (int64, for Slice); one per weight input and length in a graph. */
function keyLength(weight: Value, n: number): Value {
  const g = weight.graph;
  let lengths = keyLengths.get(g);
  if (!lengths) keyLengths.set(g, lengths = new Map());
  const key = `${weight.name}:${n}`;
  let end = lengths.get(key);
  if (!end) {
    const int64 = (v: number): Value => g.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.from([BigInt(v)]) }, 'len');
    const maxWeight = g.node('ReduceMax', [op.abs(weight)], [{ shape: [], dtype: 'float32' }], { keepdims: 0 })[0]!;
    end = op.where(op.greater(maxWeight, 0), int64(n), int64(1));
    lengths.set(key, end);
  }
  return end;
}

/**
 * WebGPU's tiled attention splits heads with a reshape to the static length: keep every key there (the software
 * adapter's Einsum attention reshapes keys with -1, so it takes the shorter tensor).
 */
function trimsKeys(): boolean {
  return !(engineDevice() === 'webgpu' && !naiveKernels());
}

/**
 * keysIfUsed(x[rows]) (rows: batch indices, null for all) in one copy: consecutive rows are cut by the Slice
 * that cuts the keys (a Gather and a Slice each copy their whole input; at 64x64 that is 5 MB per row and copy).
 */
function rowKeysIfUsed(x: Value, rows: readonly number[] | null, weight: Value): Value {
  if (!trimsKeys()) return rows ? op.gather(x, 0, rows) : x;
  const g = x.graph;
  const int64 = (v: readonly number[]): Value => g.constant({ dtype: 'int64', shape: [v.length], data: BigInt64Array.from(v.map(BigInt)) }, 'len');
  const end = keyLength(weight, x.dim(1));
  if (rows === null || !rows.every((r, j) => r === rows[0]! + j)) {
    const picked = rows ? op.gather(x, 0, rows) : x;
    return g.node('Slice', [picked, int64([0]), end, int64([1])], [{ shape: picked.shape, dtype: x.dtype }])[0]!;
  }
  const ends = op.concat([int64([rows[0]! + rows.length]), end], 0);
  return g.node('Slice', [x, int64([rows[0]!, 0]), ends, int64([0, 1])], [{ shape: [rows.length, ...x.shape.slice(1)], dtype: x.dtype }])[0]!;
}

/** [B, N, H*D] -> [B, N, H*(D+1)] with `value` as each head's last component (a logit offset of value * scale against a query column of 1). */
function withShiftColumn(x: Value, heads: number, value: number): Value {
  const [b, n, c] = x.shape as [number, number, number];
  const col = op.constFloat(x.graph, [b, n, heads, 1], new Float32Array(b * n * heads).fill(value), 'shift_column');
  return op.reshape(op.concat([op.reshape(x, [b, n, heads, c / heads]), col], 3), [b, n, heads * (c / heads + 1)]);
}

/** Hooks that apply the layout to the chosen attn1 layers; declares the weight inputs on `g`. */
export function referenceAttentionHooks(g: Graph, layout: ReferenceLayout): UNetHooks {
  const rows = layout.referenceOf.map((r, i) => ({ i, r })).filter((x): x is { i: number; r: number } => x.r !== null);
  const plainRows = layout.referenceOf.map((r, i) => ({ i, r })).filter((x) => x.r === null).map((x) => x.i);
  if (rows.length === 0) return {};
  const groupNorm = layout.sharedGroupNorm ? sharedGroupNorm(layout.referenceOf) : undefined;
  const keyScale = layout.scoreScale ?? 1;
  const n = rows.length;
  const fixedRef = g.input(WEIGHT_INPUTS[0], [n, 1, 1, 1]);
  const fixedOwn = g.input(WEIGHT_INPUTS[1], [n, 1, 1, 1]);
  const soft = g.input(WEIGHT_INPUTS[2], [n, 1, 1, 1]);
  const shift = layout.scoreShift ?? 0;
  const unread = unreadOf(layout);
  const all = layout.referenceOf.map((_, i) => i);
  let index = 0;
  return {
    ...(groupNorm ? { groupNorm } : {}),
    // after the last hooked layer (this one or earlier) nothing reads the unread rows: drop them here
    ...(unread.length ? { keepRows: (_path: string, later: readonly string[]) => (later.some((p, k) => layout.layer(p, index + 1 + k)) ? undefined : all.filter((i) => !unread.includes(i))) } : {}),
    attention(call: AttentionCall): Value | undefined {
      if (call.kind !== 'attn1') return undefined;
      if (!layout.layer(call.path, index++)) return undefined;
      const { q, k, v, heads } = call;
      const pick = (x: Value, idx: number[]): Value => op.gather(x, 0, idx);
      const own = rows.map((x) => x.i), ref = rows.map((x) => x.r);
      // gathered rows are made only where something reads them (an unread node would still run)
      const lazy = (f: () => Value): (() => Value) => { let x: Value | undefined; return () => (x ??= f()); };
      const qs = layout.queryKeyAdain ? adainTokens(pick(q, own), pick(q, ref)) : pick(q, own);
      const krRaw = lazy(() => pick(k, ref));
      const ks = lazy(() => (layout.queryKeyAdain ? adainTokens(pick(k, own), krRaw()) : pick(k, own)));
      const kr = lazy(() => (keyScale !== 1 ? op.mul(krRaw(), keyScale) : krRaw()));
      const vs = lazy(() => pick(v, own)), vr = lazy(() => pick(v, ref));
      // out = w_ref A_ref + w_own A_own with w = fixed + soft * sigmoid(+-d) is exactly
      //   fixed_ref A_ref + fixed_own A_own + soft Y,  Y = one softmax over [ref (logits + shift); own] applied to [v_ref; v_own],
      // so every term is one fused attention (no [rows, heads, N, N] score tensor, no log-sum-exps), and a term
      // whose weight is 0 in every row runs on one key only (its length follows the weight inputs at run time):
      // Stratified Attention costs A_ref + A_own, concatenation costs Y. A_own is the plain kernel's own
      // output, so weights (0, 1, 0) are the plain model bit for bit.
      // Keys and values cut from the whole batch when nothing transforms them (one Slice per term, no Gather), and
      // each half of Y's keys cut before the concatenation (a Stratified step concatenates 2 keys, not 2N twice).
      const direct = !layout.queryKeyAdain && keyScale === 1 && trimsKeys();
      const keysOf = (x: Value, picked: () => Value, idx: number[], w: Value): Value => (direct ? rowKeysIfUsed(x, idx, w) : keysIfUsed(picked(), w));
      const aOwn = call.plain(qs, keysOf(k, ks, own, fixedOwn), keysOf(v, vs, own, fixedOwn));
      const aRef = call.plain(qs, keysOf(k, kr, ref, fixedRef), keysOf(v, vr, ref, fixedRef));
      const yValues = op.concat([keysOf(v, vr, ref, soft), keysOf(v, vs, own, soft)], 1);
      const y = shift
        ? call.plain(withShiftColumn(qs, heads, 1), op.concat([keysIfUsed(withShiftColumn(kr(), heads, shift / call.scale), soft), keysIfUsed(withShiftColumn(ks(), heads, 0), soft)], 1), yValues)
        : call.plain(qs, op.concat([keysOf(k, kr, ref, soft), keysOf(k, ks, own, soft)], 1), yValues);
      const rowWeight = (w: Value): Value => op.reshape(w, [qs.dim(0), 1, 1]);
      const mixed = op.add(op.add(op.mul(aRef, rowWeight(fixedRef)), op.mul(aOwn, rowWeight(fixedOwn))), op.mul(y, rowWeight(soft)));
      // outputRows (rows dropped here): only those rows' outputs, e.g. no attention for a reference row nobody reads any more
      const out = call.outputRows ?? all;
      const plainOut = plainRows.filter((i) => out.includes(i));
      if (own.some((i) => !out.includes(i))) throw new Error(`${call.path}: a row attending to a reference cannot be dropped`);
      if (plainOut.length === 0 && out.length === own.length && out.every((r, j) => r === own[j])) return mixed;
      const parts = [...plainOut, ...own];
      const plain = plainOut.length ? [call.plain(pick(q, plainOut), pick(k, plainOut), pick(v, plainOut))] : [];
      const order = out.map((r) => parts.indexOf(r));
      const joined = op.concat([...plain, mixed], 0);
      return order.every((r, j) => r === j) ? joined : op.gather(joined, 0, order);
    },
  };
}
