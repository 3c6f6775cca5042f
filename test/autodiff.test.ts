/**
 * Finite-difference checks of every gradient rule. The engine has no float64 kernels for several of
 * these operators (Conv, ConvTranspose, Erf, Resize, InstanceNormalization), so the checks run in float32
 * with central differences, h = 1e-2 on O(1) inputs: the truncation error is O(h^2 |f'''|) ~ 1e-4 and the
 * rounding error ~ 2^-24 |L| / h ~ 1e-5 |L|, so |AD - FD| <= 2e-3 + 2e-2 |AD| is a fair bound that a wrong
 * rule (off by a factor, a sign, a transpose) cannot meet.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { gradients } from '../src/graph/autodiff.js';
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import * as nn from '../src/graph/nn.js';
import { CompiledGraph, compile } from '../src/graph/session.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import { numel } from '../src/tensor.js';

type Build = (xs: Value[]) => Value;

let counter = 0;
async function check(name: string, shapes: number[][], build: Build, opts: { positive?: boolean; h?: number } = {}): Promise<void> {
  const key = `fd-${name}-${counter++}`;
  const rnd = new NativeGaussian(counter);
  const inputs = shapes.map((s) => { const d = rnd.randn(s); return opts.positive ? d.map((v) => Math.abs(v) + 0.5) : d; });
  let projShape: readonly number[] = [];
  const sess: CompiledGraph = await compile(key, () => {
    const g = new Graph();
    const xs = shapes.map((s, i) => g.input(`x${i}`, s));
    const y = build(xs);
    projShape = y.shape;
    const r = g.input('r', y.shape);
    const loss = op.reduceSum(op.mul(y, r), [...y.shape.keys()], false);
    g.output('loss', loss);
    gradients(g, loss, xs).forEach((d, i) => g.output(`d${i}`, d));
    return g;
  });
  const r = { shape: projShape, data: new NativeGaussian(1000 + counter).randn(projShape) };
  const feeds = (xs: Float32Array[]) => Object.fromEntries([...xs.map((d, i) => [`x${i}`, { shape: shapes[i]!, data: d }]), ['r', r]]);
  const base = await sess.run(feeds(inputs));
  const h = opts.h ?? 1e-2;
  for (let i = 0; i < inputs.length; i++) {
    const ad = base[`d${i}`]!.data;
    const n = numel(shapes[i]!);
    const picks = n <= 12 ? [...Array(n).keys()] : [0, 1, Math.floor(n / 3), Math.floor(n / 2), n - 2, n - 1];
    for (const j of picks) {
      const plus = inputs.map((d) => d.slice()), minus = inputs.map((d) => d.slice());
      plus[i]![j]! += h; minus[i]![j]! -= h;
      const lp = (await sess.run(feeds(plus))).loss!.data[0]!, lm = (await sess.run(feeds(minus))).loss!.data[0]!;
      const fd = (lp - lm) / (2 * h);
      assert.ok(Math.abs(ad[j]! - fd) <= 2e-3 + 2e-2 * Math.abs(ad[j]!), `${name}: d/dx${i}[${j}] autodiff ${ad[j]} vs finite difference ${fd}`);
    }
  }
}

const w = (g: Graph, shape: number[], seed: number) => op.constFloat(g, shape, new NativeGaussian(seed).randn(shape).map((v) => v * 0.5));

test('gradient rules: elementwise with broadcasting', async () => {
  await check('add', [[2, 3], [3]], ([a, b]) => op.add(a!, b!));
  await check('sub', [[2, 3], [2, 1]], ([a, b]) => op.sub(a!, b!));
  await check('mul', [[2, 3], [1, 3]], ([a, b]) => op.mul(a!, b!));
  await check('div', [[2, 3], [3]], ([a, b]) => op.div(a!, b!), { positive: true });
  await check('neg-rsub', [[5]], ([a]) => op.rsub(2, op.neg(a!)));
  await check('where', [[2, 4], [2, 4]], ([a, b]) => op.where(op.greater(a!, 0), op.mul(a!, b!), b!));
});

test('gradient rules: unary functions', async () => {
  for (const [name, f, positive] of [
    ['exp', op.exp], ['log', op.log, true], ['sqrt', op.sqrt, true], ['sigmoid', op.sigmoid], ['tanh', op.tanh], ['sin', op.sin], ['cos', op.cos],
    ['erf', op.erf], ['relu', op.relu], ['abs', op.abs], ['silu', nn.silu], ['gelu', nn.gelu], ['quick_gelu', nn.quickGelu],
    ['acos', (x: Value) => op.acos(op.mul(op.tanh(x), 0.9))], ['clip', (x: Value) => op.clip(x, -0.5, 0.5)],
  ] as const) await check(name, [[7]], ([a]) => (f as (v: Value) => Value)(a!), { positive: Boolean(positive) });
});

test('gradient rules: reductions, softmax, log-sum-exp', async () => {
  await check('reduce-mean', [[2, 3, 4]], ([a]) => op.reduceMean(a!, [1, 2]));
  await check('reduce-sum', [[2, 3, 4]], ([a]) => op.reduceSum(a!, [0, 2], false));
  await check('softmax', [[2, 5]], ([a]) => op.softmax(a!, -1));
  await check('lse', [[2, 5]], ([a]) => op.reduceLogSumExp(a!, [-1]));
});

test('gradient rules: shapes (reshape, transpose, concat, slice, gather, expand via broadcast)', async () => {
  await check('reshape-transpose', [[2, 3, 4]], ([a]) => op.transpose(op.reshape(a!, [6, 4]), [1, 0]));
  await check('concat', [[2, 3], [2, 2]], ([a, b]) => op.concat([a!, op.mul(b!, b!)], 1));
  await check('slice', [[4, 5]], ([a]) => op.slice(a!, 1, 1, 4));
  await check('gather', [[4, 3]], ([a]) => op.gather(a!, 0, [2, 0, 2]));
  await check('chunk', [[2, 6]], ([a]) => { const [x, y] = op.chunk(a!, 2, 1); return op.mul(x!, y!); });
});

test('gradient rules: matmul, gemm (linear), conv (strided, padded, asymmetric), nearest upsampling', async () => {
  await check('matmul-batched', [[2, 3, 4], [4, 5]], ([a, b]) => op.matmul(a!, b!));
  await check('gemm', [[3, 4], [5, 4], [5]], ([a, b, c]) => a!.graph.node('Gemm', [a!, b!, c!], [{ shape: [3, 5], dtype: 'float32' }], { transB: 1 })[0]!);
  await check('conv-3x3', [[2, 3, 5, 5], [4, 3, 3, 3], [4]], ([x, k, b]) => op.conv2d(x!, k!, b!, { padding: 1 }));
  await check('conv-stride2', [[1, 2, 6, 6], [3, 2, 3, 3]], ([x, k]) => op.conv2d(x!, k!, null, { stride: 2, padding: 1 }));
  await check('conv-asym', [[1, 2, 6, 6], [2, 2, 3, 3]], ([x, k]) => op.conv2d(x!, k!, null, { stride: 2, padding: [0, 0, 1, 1] }));
  await check('conv-1x1', [[1, 3, 4, 4], [2, 3, 1, 1]], ([x, k]) => op.conv2d(x!, k!, null));
  await check('upsample', [[1, 2, 3, 3]], ([x]) => op.upsampleNearest(x!, 6, 6));
});

test('gradient rules: layer norm (input, scale, bias), group norm (instance norm + affine)', async () => {
  await check('layernorm', [[2, 3, 8], [8], [8]], ([x, s, b]) => op.layerNormalization(x!, s!, b!, 1e-5));
  await check('groupnorm', [[2, 4, 3, 3]], ([x]) => {
    const g = x!.graph;
    const grouped = op.reshape(x!, [2, 2, -1]);
    const n = op.instanceNormalization(grouped, op.constFloat(g, [2], new Float32Array([1, 1])), op.constFloat(g, [2], new Float32Array(2)), 1e-5);
    return op.mul(op.reshape(n, [2, 4, 3, 3]), w(g, [4, 1, 1], 3));
  });
  await check('instancenorm-scale', [[1, 3, 4], [3], [3]], ([x, s, b]) => op.instanceNormalization(x!, s!, b!, 1e-5));
});

test('gradients of a whole block: attention with a softmax over scaled scores', async () => {
  await check('attention', [[1, 4, 8]], ([x]) => {
    const g = x!.graph;
    const q = op.matmul(x!, w(g, [8, 8], 7)), k = op.matmul(x!, w(g, [8, 8], 8)), v = op.matmul(x!, w(g, [8, 8], 9));
    return nn.mergeHeads(nn.attentionCore(nn.splitHeads(q, 2), nn.splitHeads(k, 2), nn.splitHeads(v, 2), 0.5));
  });
  await check('fused-attention', [[1, 4, 8], [1, 6, 8], [1, 6, 8]], ([q, k, v]) => nn.fusedAttention(q!, k!, v!, 2, 0.4));
});
