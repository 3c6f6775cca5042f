/**
 * The reference-attention mechanism (src/methods/reference-attention.ts) on small hand batches, without a UNet:
 * each row's output is worked out in float64 from the formula (fixed_ref A_ref + fixed_own A_own + soft Y, Y one
 * softmax over [ref logits + shift; own logits]) and compared with the graph ONNX Runtime runs. Milliseconds a
 * case: this is the fast file the methods-attention mutation slice runs.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { engineDevice, runOnce } from '../src/graph/session.js';
import {
  adainTokens, CONCAT, layoutKey, PLAIN, REPLACE, referenceAttentionHooks, stratified, weightFeeds,
  type ReferenceLayout, type ReferenceWeights,
} from '../src/methods/reference-attention.js';
import { plainAttention } from '../src/models/attention.js';
import type { AttentionCall } from '../src/models/hooks.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';

const N = 3, HEADS = 2, D = 3, C = HEADS * D;

/** Seeded values in [-2, 2) (no golden needed). */
function values(n: number, seed: number): number[] {
  return Array.from(new TorchGenerator(seed).randn([n]), (v) => Math.max(-2, Math.min(2, v)));
}
type Rows = number[][][]; // [row][token][channel]
const toRows = (x: number[], b: number, n = N): Rows => Array.from({ length: b }, (_, r) => Array.from({ length: n }, (_, t) => x.slice((r * n + t) * C, (r * n + t + 1) * C)));

/** softmax(scale q k^T + shift_j) v per head, float64. */
function attend(q: number[][], k: number[][], v: number[][], scale: number, shift: number[] = k.map(() => 0)): number[][] {
  return q.map((qt) => {
    const out = new Array<number>(C).fill(0);
    for (let h = 0; h < HEADS; h++) {
      const cs = Array.from({ length: D }, (_, j) => h * D + j);
      const logits = k.map((kj, j) => cs.reduce((p, c) => p + qt[c]! * kj[c]!, 0) * scale + shift[j]!);
      const mx = Math.max(...logits), e = logits.map((l) => Math.exp(l - mx)), z = e.reduce((p, y) => p + y, 0);
      for (const c of cs) out[c] = e.reduce((p, w, j) => p + (w / z) * v[j]![c]!, 0);
    }
    return out;
  });
}

/** AdaIN over tokens per channel toward `t` (torch.var unbiased + eps), float64. */
function adain(x: number[][], t: number[][], eps = 1e-5): number[][] {
  const stats = (a: number[][], c: number): [number, number] => {
    const col = a.map((r) => r[c]!), m = col.reduce((p, y) => p + y, 0) / col.length;
    return [m, Math.sqrt(col.reduce((p, y) => p + (y - m) ** 2, 0) / (col.length - 1) + eps)];
  };
  return x.map((row) => row.map((val, c) => { const [m, s] = stats(x, c), [tm, ts] = stats(t, c); return ((val - m) / s) * ts + tm; }));
}

interface Case { referenceOf: (number | null)[]; weights: ReferenceWeights[]; scale: number; shift?: number; scoreScale?: number; adain?: boolean }

/** The formula, row by row. */
function expected(q: Rows, k: Rows, v: Rows, c: Case): number[][][] {
  let j = 0;
  return c.referenceOf.map((p, r) => {
    if (p === null) return attend(q[r]!, k[r]!, v[r]!, c.scale);
    const w = c.weights[j++]!;
    const qr = c.adain ? adain(q[r]!, q[p]!) : q[r]!, kOwn = c.adain ? adain(k[r]!, k[p]!) : k[r]!;
    const kRef = k[p]!.map((t) => t.map((x) => x * (c.scoreScale ?? 1)));
    const aRef = attend(qr, kRef, v[p]!, c.scale), aOwn = attend(qr, kOwn, v[r]!, c.scale);
    const y = attend(qr, [...kRef, ...kOwn], [...v[p]!, ...v[r]!], c.scale, [...kRef.map(() => c.shift ?? 0), ...kOwn.map(() => 0)]);
    return aRef.map((t, ti) => t.map((x, ci) => w.fixedRef * x + w.fixedOwn * aOwn[ti]![ci]! + w.soft * y[ti]![ci]!));
  });
}

interface Inputs { q: number[]; k: number[]; v: number[]; b: number }
const inputs = (b: number, seed = 1): Inputs => ({ q: values(b * N * C, seed), k: values(b * N * C, seed + 1), v: values(b * N * C, seed + 2), b });

function callOf(q: Value, k: Value, v: Value, scale: number, extra: Partial<AttentionCall> = {}): AttentionCall {
  return { path: 'up_blocks.0.attentions.0.transformer_blocks.0.attn1', kind: 'attn1', q, k, v, heads: HEADS, scale, plain: (a, b2, c) => plainAttention(a, b2, c, HEADS, scale), ...extra };
}

/** Runs the hooked attention of one layer on the inputs; returns [rows out][token][channel]. */
async function run(x: Inputs, layout: ReferenceLayout, weights: ReferenceWeights[], scale: number, extra: Partial<AttentionCall> = {}): Promise<number[][][]> {
  const g = new Graph();
  const [qi, ki, vi] = ['q', 'k', 'v'].map((n) => g.input(n, [x.b, N, C])) as [Value, Value, Value];
  const hooks = referenceAttentionHooks(g, layout);
  const y = hooks.attention!(callOf(qi, ki, vi, scale, extra));
  assert.ok(y, 'the hook returns the layer output');
  g.output('y', y);
  const t3 = (a: number[]) => ({ shape: [x.b, N, C], data: Float32Array.from(a) });
  const out = (await runOnce(g, { q: t3(x.q), k: t3(x.k), v: t3(x.v), ...weightFeeds(weights) })).y!;
  assert.deepEqual([...out.shape], [out.data.length / (N * C), N, C]);
  return toRows(Array.from(out.data), out.shape[0]!);
}

function maxErr(got: number[][][], want: number[][][]): number {
  assert.equal(got.length, want.length, 'rows');
  let e = 0;
  got.forEach((r, i) => r.forEach((t, j) => t.forEach((x, c) => { e = Math.max(e, Math.abs(x - want[i]![j]![c]!)); })));
  return e;
}

async function check(c: Case, seed = 1): Promise<void> {
  const x = inputs(c.referenceOf.length, seed);
  const layout: ReferenceLayout = { referenceOf: c.referenceOf, layer: () => true, scoreShift: c.shift, scoreScale: c.scoreScale, queryKeyAdain: c.adain };
  const got = await run(x, layout, c.weights, c.scale);
  const err = maxErr(got, expected(toRows(x.q, x.b), toRows(x.k, x.b), toRows(x.v, x.b), c));
  assert.ok(err < 3e-6, `${JSON.stringify(c)}: max err ${err}`);
}

test('reference attention = fixed_ref A_ref + fixed_own A_own + soft softmax([ref + shift; own]): every row by hand', async () => {
  // Row 0 attends to row 2, row 1 is plain, row 2 attends to row 0 (reference indices are not the row order);
  // weights of every kind, negative ones too (the formula is linear in them).
  const mixed = [{ fixedRef: 0.2, fixedOwn: 0.3, soft: 0.5 }, { fixedRef: 0.6, fixedOwn: -0.4, soft: 0.8 }];
  await check({ referenceOf: [2, null, 0], weights: mixed, scale: 0.4 });
  await check({ referenceOf: [2, null, 0], weights: mixed, scale: 0.4, shift: 0.7, scoreScale: 0.5 });
  await check({ referenceOf: [null, 0, 0], weights: [stratified(3, 1), CONCAT], scale: D ** -0.5, shift: Math.log(2) });
  await check({ referenceOf: [null, 0], weights: [REPLACE], scale: 0.4, scoreScale: 2 });
  await check({ referenceOf: [1, null], weights: [{ fixedRef: -0.5, fixedOwn: 0, soft: 0 }], scale: 0.4 }, 7);
  // StyleAligned's AdaIN of queries and keys toward the reference row's (over tokens, per channel).
  await check({ referenceOf: [null, 0], weights: [CONCAT], scale: 0.4, shift: -0.3, scoreScale: 0.5, adain: true }, 4);
  await check({ referenceOf: [1, null, 1], weights: [{ fixedRef: 0.5, fixedOwn: 0.25, soft: 0.25 }, CONCAT], scale: 0.4, adain: true }, 9);
});

test('weights (0, 1, 0) in every row are the plain attention bit for bit; only the used terms need keys', async () => {
  const x = inputs(3, 11);
  const g = new Graph();
  const [qi, ki, vi] = ['q', 'k', 'v'].map((n) => g.input(n, [3, N, C])) as [Value, Value, Value];
  g.output('y', plainAttention(qi, ki, vi, HEADS, 0.4));
  const t3 = (a: number[]) => ({ shape: [3, N, C], data: Float32Array.from(a) });
  const plain = (await runOnce(g, { q: t3(x.q), k: t3(x.k), v: t3(x.v) })).y!;
  const hooked = await run(x, { referenceOf: [null, 0, 0], layer: () => true }, [PLAIN, PLAIN], 0.4);
  assert.deepEqual(hooked.flat(2), Array.from(plain.data));
  // One weight kind zero in every row, the other two in use (each term then runs on one key of its input).
  for (const w of [[CONCAT, REPLACE], [stratified(1, 1), stratified(1, 3)], [REPLACE, { fixedRef: 0, fixedOwn: -1, soft: 0 }]]) {
    await check({ referenceOf: [null, 0, 0], weights: w, scale: 0.4, shift: 0.5 }, 13);
  }
});

test('adainTokens: torch.var (unbiased) over tokens + eps 1e-5, per channel, on a row of small variance', async () => {
  // Tokens that differ by ~1e-3: var ~1e-6, so eps (1e-5) and the n/(n-1) correction both move the result.
  const x = values(N * C, 21).map((v) => v * 1e-3), t = values(N * C, 22);
  const g = new Graph();
  const xi = g.input('x', [1, N, C]), ti = g.input('t', [1, N, C]);
  g.output('y', adainTokens(xi, ti));
  g.output('z', adainTokens(xi, ti, 1e-3));
  const f = (a: number[]) => ({ shape: [1, N, C], data: Float32Array.from(a) });
  const r = await runOnce(g, { x: f(x), t: f(t) });
  const want = adain(toRows(x, 1)[0]!, toRows(t, 1)[0]!).flat(), want3 = adain(toRows(x, 1)[0]!, toRows(t, 1)[0]!, 1e-3).flat();
  const e = Math.max(...want.map((w, i) => Math.abs(r.y!.data[i]! - w))), e3 = Math.max(...want3.map((w, i) => Math.abs(r.z!.data[i]! - w)));
  assert.ok(e < 2e-5 && e3 < 2e-5, `adain ${e}, eps 1e-3 ${e3}`);
  assert.ok(Math.max(...want.map((w, i) => Math.abs(w - want3[i]!))) > 0.1, 'the two eps differ');
});

test('layers: only attn1 calls count and take part, in forward order; rows without reference make no hooks', () => {
  const g = new Graph();
  const x = g.input('x', [2, N, C]);
  const seen: [string, number][] = [];
  const hooks = referenceAttentionHooks(g, { referenceOf: [null, 0], layer: (p, i) => { seen.push([p, i]); return i % 2 === 1; } });
  assert.equal(hooks.groupNorm, undefined, 'GroupNorm hook only with sharedGroupNorm');
  assert.equal(hooks.keepRows, undefined, 'keepRows only with unread rows');
  const call = (path: string, kind: AttentionCall['kind']) => hooks.attention!(callOf(x, x, x, 0.4, { path, kind }));
  assert.equal(call('a.attn2', 'attn2'), undefined);
  assert.equal(call('a.attn1', 'attn1'), undefined);
  assert.equal(call('mid.spatial', 'spatial'), undefined);
  assert.notEqual(call('b.attn1', 'attn1'), undefined);
  assert.equal(call('c.attn1', 'attn1'), undefined);
  assert.notEqual(call('d.attn1', 'attn1'), undefined);
  assert.deepEqual(seen, [['a.attn1', 0], ['b.attn1', 1], ['c.attn1', 2], ['d.attn1', 3]]);
  assert.deepEqual(referenceAttentionHooks(new Graph(), { referenceOf: [null, null], layer: () => true }), {});
  const inputs = (gr: Graph) => gr.inputs.map((i) => i.name);
  const g2 = new Graph();
  referenceAttentionHooks(g2, { referenceOf: [null, 0, 0], layer: () => true });
  assert.deepEqual(inputs(g2), ['reference_fixed_ref', 'reference_fixed_own', 'reference_soft']);
  assert.deepEqual(g2.inputs.map((i) => [...i.shape]), [[2, 1, 1, 1], [2, 1, 1, 1], [2, 1, 1, 1]]);
  const sg = referenceAttentionHooks(new Graph(), { referenceOf: [null, 0], layer: () => true, sharedGroupNorm: true, unreadRows: [0] });
  assert.equal(typeof sg.groupNorm, 'function');
  assert.equal(sg.keepRows, undefined, 'unread rows are ignored with shared GroupNorm');
});

test('unread rows: dropped after the last hooked layer (keepRows), outputs of the kept rows only (outputRows)', async () => {
  const g = new Graph();
  const x = g.input('x', [4, N, C]);
  const hooks = referenceAttentionHooks(g, { referenceOf: [null, 0, null, 0], layer: (_p, i) => i <= 2, unreadRows: [2, 0, 2] });
  assert.equal(hooks.keepRows!('L0', ['L1', 'L2', 'L3']), undefined, 'layers 1, 2 still read the rows');
  hooks.attention!(callOf(x, x, x, 0.4, { path: 'L0' }));
  assert.equal(hooks.keepRows!('L1', ['L2', 'L3']), undefined);
  hooks.attention!(callOf(x, x, x, 0.4, { path: 'L1' }));
  assert.deepEqual(hooks.keepRows!('L2', ['L3', 'L4']), [1, 3], 'layer 2 is the last hooked one');
  assert.deepEqual(hooks.keepRows!('L2', []), [1, 3]);
  // A row attending to a reference cannot be dropped.
  assert.throws(() => hooks.attention!(callOf(x, x, x, 0.4, { path: 'up.attn1', outputRows: [0, 2] })), /^Error: up\.attn1: a row attending to a reference cannot be dropped$/);
  // Output of kept rows only: [plain row 2, mixed rows 1, 3] in the order asked.
  const w = [{ fixedRef: 0.2, fixedOwn: 0.3, soft: 0.5 }, stratified(1, 3)];
  const xin = inputs(4, 31);
  const all = expected(toRows(xin.q, 4), toRows(xin.k, 4), toRows(xin.v, 4), { referenceOf: [null, 0, null, 0], weights: w, scale: 0.4 });
  const layout: ReferenceLayout = { referenceOf: [null, 0, null, 0], layer: () => true };
  for (const rowsOut of [[1, 2, 3], [3, 1], [1, 3], [2, 1, 3], [0, 1, 2, 3]]) {
    const got = await run(xin, layout, w, 0.4, { outputRows: rowsOut });
    const err = maxErr(got, rowsOut.map((r) => all[r]!));
    assert.ok(err < 3e-6, `rows ${rowsOut}: ${err}`);
  }
  // Rows in an order that keeps some in place (the fast path must not return them in the attending order).
  const w3 = [...w, { fixedRef: 0.4, fixedOwn: 0.1, soft: 0.5 }];
  const x3 = inputs(4, 37);
  const all3 = expected(toRows(x3.q, 4), toRows(x3.k, 4), toRows(x3.v, 4), { referenceOf: [null, 0, 0, 0], weights: w3, scale: 0.4 });
  for (const rowsOut of [[1, 3, 2], [1, 2, 3], [0, 1, 2, 3]]) {
    const err = maxErr(await run(x3, { referenceOf: [null, 0, 0, 0], layer: () => true }, w3, 0.4, { outputRows: rowsOut }), rowsOut.map((r) => all3[r]!));
    assert.ok(err < 3e-6, `rows ${rowsOut}: ${err}`);
  }
  // Dropping only one of the attending rows is refused too.
  const h2 = referenceAttentionHooks(new Graph(), { referenceOf: [null, 0, null, 0], layer: () => true });
  const g2 = new Graph();
  const x2 = g2.input('x', [4, N, C]);
  assert.throws(() => h2.attention!(callOf(x2, x2, x2, 0.4, { path: 'p.attn1', outputRows: [1, 2] })), /^Error: p\.attn1: a row attending to a reference cannot be dropped$/);
  for (const bad of [[1], [-1], [0.5], [2]]) {
    assert.throws(() => referenceAttentionHooks(new Graph(), { referenceOf: [null, 0], layer: () => true, unreadRows: bad }),
      new RegExp(`^Error: reference attention: unread row ${bad[0]} is not a row without reference$`));
  }
});

test('layoutKey names everything that shapes the graph; weightFeeds is [rows, 1, 1, 1] per weight', () => {
  const base: ReferenceLayout = { referenceOf: [null, 0, 0], layer: () => true };
  assert.equal(layoutKey(base, 'L'), 'ref[-,0,0]:L');
  assert.equal(layoutKey({ ...base, queryKeyAdain: true, scoreShift: 0.5, scoreScale: 2, sharedGroupNorm: true }, 'all'), 'ref[-,0,0]:adain:shift0.5:scale2:gn:all');
  assert.equal(layoutKey({ ...base, scoreShift: 0, scoreScale: 1, queryKeyAdain: false, sharedGroupNorm: false }, 'x'), 'ref[-,0,0]:x');
  assert.equal(layoutKey({ ...base, unreadRows: [0] }, 'x'), 'ref[-,0,0]:unread0:x');
  assert.equal(layoutKey({ referenceOf: [null, 0, null, 0], layer: () => true, unreadRows: [2, 0, 2] }, 'x'), 'ref[-,0,-,0]:unread0,2:x');
  assert.equal(layoutKey({ ...base, unreadRows: [0], sharedGroupNorm: true }, 'x'), 'ref[-,0,0]:gn:x');
  assert.equal(layoutKey({ ...base, unreadRows: [] }, 'x'), 'ref[-,0,0]:x');
  const f = weightFeeds([stratified(3, 1), CONCAT, REPLACE, PLAIN]);
  assert.deepEqual(Object.keys(f), ['reference_fixed_ref', 'reference_fixed_own', 'reference_soft']);
  for (const v of Object.values(f)) assert.deepEqual(v.shape, [4, 1, 1, 1]);
  assert.deepEqual([...f.reference_fixed_ref!.data], [0.75, 0, 1, 0]);
  assert.deepEqual([...f.reference_fixed_own!.data], [0.25, 0, 0, 1]);
  assert.deepEqual([...f.reference_soft!.data], [0, 1, 0, 0]);
  assert.deepEqual([PLAIN, CONCAT, REPLACE], [{ fixedRef: 0, fixedOwn: 1, soft: 0 }, { fixedRef: 0, fixedOwn: 0, soft: 1 }, { fixedRef: 1, fixedOwn: 0, soft: 0 }]);
  assert.deepEqual(stratified(2, 0.5), { fixedRef: 0.8, fixedOwn: 0.2, soft: 0 });
});

test('shared GroupNorm through the hooks: each row normalised over [own; its reference] along H, sliced back', async () => {
  const B = 3, Cc = 2, H = 2, W = 2, eps = 1e-5;
  const x = values(B * Cc * H * W, 41).map((v, i) => v + Math.floor(i / (Cc * H * W)));
  const g = new Graph();
  const xi = g.input('x', [B, Cc, H, W]);
  const hooks = referenceAttentionHooks(g, { referenceOf: [null, 2, 0], layer: () => true, sharedGroupNorm: true });
  // One group per sample, no affine.
  const norm = (v: Value): Value => {
    const gr = op.reshape(v, [v.dim(0), 1, -1]);
    const c = op.sub(gr, op.reduceMean(gr, [-1]));
    return op.reshape(op.div(c, op.sqrt(op.add(op.reduceMean(op.mul(c, c), [-1]), eps))), v.shape);
  };
  g.output('y', hooks.groupNorm!({ path: 'conv_norm_out', x: xi, norm })!);
  const y = (await runOnce(g, { x: { shape: [B, Cc, H, W], data: Float32Array.from(x) }, ...weightFeeds([PLAIN, PLAIN]) })).y!;
  assert.deepEqual([...y.shape], [B, Cc, H, W]);
  const per = Cc * H * W;
  let err = 0;
  for (const [r, ref] of [[0, 0], [1, 2], [2, 0]] as const) {
    const own = x.slice(r * per, (r + 1) * per), pool = [...own, ...x.slice(ref * per, (ref + 1) * per)];
    const m = pool.reduce((p, v) => p + v, 0) / pool.length, sd = Math.sqrt(pool.reduce((p, v) => p + (v - m) ** 2, 0) / pool.length + eps);
    own.forEach((v, j) => { err = Math.max(err, Math.abs(y.data[r * per + j]! - (v - m) / sd)); });
  }
  assert.ok(err < 3e-6, `shared GroupNorm ${err}`);
});

test('each term\'s keys are cut at run time to one key when its weight is 0 in every row (CPU graphs)', () => {
  const g = new Graph();
  const x = g.input('x', [2, N, C]);
  referenceAttentionHooks(g, { referenceOf: [null, 0], layer: () => true }).attention!(callOf(x, x, x, 0.4));
  const count: Record<string, number> = {};
  for (const n of g.nodes) count[n.op] = (count[n.op] ?? 0) + 1;
  assert.equal(engineDevice(), 'cpu');
  // one run-time length per weight input; keys and values of A_own, A_ref and each half of the concatenated
  // softmax's, each cut from the whole batch by one Slice (no Gather of the rows first)
  assert.equal(count.ReduceMax, 3);
  assert.equal(count.Slice, 8);
  assert.equal(count.Gather, 4, 'gathered: the attending row\'s queries, and the plain row\'s queries, keys and values');
});
