/**
 * Operators of the IR, each with its shape inference. Composite layers (linear, group norm, attention)
 * are built from these in nn.ts; model files call nn.ts and read like the math.
 */
import { numel } from '../tensor.js';
import type { ConstData, DType, Value } from './ir.js';

function broadcast(a: readonly number[], b: readonly number[], what: string): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const x = a[a.length - n + i] ?? 1;
    const y = b[b.length - n + i] ?? 1;
    if (x !== y && x !== 1 && y !== 1) throw new Error(`${what}: shapes [${a}] and [${b}] do not broadcast`);
    out.push(x === 1 ? y : x);
  }
  return out;
}

function binary(op: string, a: Value, b: Value | number): Value {
  const g = a.graph;
  const bv = typeof b === 'number' ? scalar(a, b) : b;
  return g.node(op, [a, bv], [{ shape: broadcast(a.shape, bv.shape, op), dtype: a.dtype }])[0]!;
}

/** A scalar constant of x's dtype. */
export function scalar(like: Value, v: number): Value {
  const data = like.dtype === 'float64' ? new Float64Array([v]) : new Float32Array([v]);
  return like.graph.constant({ dtype: like.dtype, shape: [], data }, 'scalar');
}

export const add = (a: Value, b: Value | number): Value => binary('Add', a, b);
export const sub = (a: Value, b: Value | number): Value => binary('Sub', a, b);
export const mul = (a: Value, b: Value | number): Value => binary('Mul', a, b);
export const div = (a: Value, b: Value | number): Value => binary('Div', a, b);
export const pow = (a: Value, b: Value | number): Value => binary('Pow', a, b);

function unary(op: string, x: Value, attrs: Record<string, number> = {}): Value {
  return x.graph.node(op, [x], [{ shape: x.shape, dtype: x.dtype }], attrs)[0]!;
}
export const sigmoid = (x: Value): Value => unary('Sigmoid', x);
export const exp = (x: Value): Value => unary('Exp', x);
export const log = (x: Value): Value => unary('Log', x);
export const sqrt = (x: Value): Value => unary('Sqrt', x);
export const neg = (x: Value): Value => unary('Neg', x);
export const sin = (x: Value): Value => unary('Sin', x);
export const cos = (x: Value): Value => unary('Cos', x);
export const erf = (x: Value): Value => unary('Erf', x);
export const relu = (x: Value): Value => unary('Relu', x);
export const tanh = (x: Value): Value => unary('Tanh', x);
export const abs = (x: Value): Value => unary('Abs', x);
export const identity = (x: Value): Value => unary('Identity', x);
export const acos = (x: Value): Value => unary('Acos', x);

/** c - x for a constant c. */
export function rsub(c: number, x: Value): Value {
  return x.graph.node('Sub', [scalar(x, c), x], [{ shape: x.shape, dtype: x.dtype }])[0]!;
}

/** cond ? a : b with broadcasting (cond is bool). */
export function where(cond: Value, a: Value, b: Value): Value {
  const shape = broadcast(broadcast(cond.shape, a.shape, 'Where'), b.shape, 'Where');
  return a.graph.node('Where', [cond, a, b], [{ shape, dtype: a.dtype }])[0]!;
}

export function greater(a: Value, b: Value | number): Value {
  const bv = typeof b === 'number' ? scalar(a, b) : b;
  return a.graph.node('Greater', [a, bv], [{ shape: broadcast(a.shape, bv.shape, 'Greater'), dtype: 'bool' }])[0]!;
}

export function clip(x: Value, min: number, max: number): Value {
  return x.graph.node('Clip', [x, scalar(x, min), scalar(x, max)], [{ shape: x.shape, dtype: x.dtype }])[0]!;
}

export function softmax(x: Value, axis = -1): Value {
  return unary('Softmax', x, { axis });
}

export function matmul(a: Value, b: Value): Value {
  if (a.rank < 2 || b.rank < 2) throw new Error(`MatMul: ranks ${a.rank}, ${b.rank} (need >= 2)`);
  if (a.dim(-1) !== b.dim(-2)) throw new Error(`MatMul: [${a.shape}] x [${b.shape}] inner sizes differ`);
  const batch = broadcast(a.shape.slice(0, -2), b.shape.slice(0, -2), 'MatMul');
  return a.graph.node('MatMul', [a, b], [{ shape: [...batch, a.dim(-2), b.dim(-1)], dtype: a.dtype }])[0]!;
}

function int64(g: Value['graph'], values: readonly number[], hint: string): Value {
  return g.constant({ dtype: 'int64', shape: [values.length], data: BigInt64Array.from(values.map((v) => BigInt(v))) }, hint);
}

/** Reshape to a fully static shape (at most one -1). */
export function reshape(x: Value, shape: readonly number[]): Value {
  const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const resolved = shape.map((d) => (d === -1 ? numel(x.shape) / known : d));
  if (numel(resolved) !== numel(x.shape) || !resolved.every(Number.isInteger)) throw new Error(`Reshape: [${x.shape}] cannot become [${shape}]`);
  if (resolved.join(',') === x.shape.join(',')) return x;
  return x.graph.node('Reshape', [x, int64(x.graph, resolved, 'shape')], [{ shape: resolved, dtype: x.dtype }])[0]!;
}

export function transpose(x: Value, perm: readonly number[]): Value {
  if (perm.length !== x.rank) throw new Error(`Transpose: perm [${perm}] for rank ${x.rank}`);
  return x.graph.node('Transpose', [x], [{ shape: perm.map((p) => x.dim(p)), dtype: x.dtype }], { perm: [...perm] })[0]!;
}

export function concat(xs: readonly Value[], axis: number): Value {
  const first = xs[0];
  if (!first) throw new Error('Concat of nothing');
  if (xs.length === 1) return first;
  const ax = axis < 0 ? first.rank + axis : axis;
  const shape = [...first.shape];
  shape[ax] = xs.reduce((s, v) => s + v.dim(ax), 0);
  for (const v of xs) {
    if (v.rank !== first.rank || v.shape.some((d, i) => i !== ax && d !== first.shape[i])) throw new Error(`Concat: [${v.shape}] does not fit [${first.shape}] on axis ${ax}`);
  }
  return first.graph.node('Concat', xs, [{ shape, dtype: first.dtype }], { axis: ax })[0]!;
}

/** x[start:end] along one axis. */
export function slice(x: Value, axis: number, start: number, end: number): Value {
  const ax = axis < 0 ? x.rank + axis : axis;
  if (start === 0 && end === x.dim(ax)) return x;
  if (!(0 <= start && start < end && end <= x.dim(ax))) throw new Error(`Slice: [${start}, ${end}) on axis ${ax} of [${x.shape}]`);
  const g = x.graph;
  const shape = [...x.shape];
  shape[ax] = end - start;
  return g.node('Slice', [x, int64(g, [start], 'starts'), int64(g, [end], 'ends'), int64(g, [ax], 'axes')], [{ shape, dtype: x.dtype }])[0]!;
}

/** Split into equal chunks along an axis (torch.chunk). */
export function chunk(x: Value, n: number, axis: number): Value[] {
  const ax = axis < 0 ? x.rank + axis : axis;
  const size = x.dim(ax) / n;
  if (!Number.isInteger(size)) throw new Error(`chunk: ${x.dim(ax)} not divisible by ${n}`);
  return Array.from({ length: n }, (_, i) => slice(x, ax, i * size, (i + 1) * size));
}

/** Rows picked by index along an axis (ONNX Gather with constant indices). */
export function gather(x: Value, axis: number, indices: readonly number[]): Value {
  const ax = axis < 0 ? x.rank + axis : axis;
  const shape = [...x.shape];
  shape[ax] = indices.length;
  return x.graph.node('Gather', [x, int64(x.graph, indices, 'indices')], [{ shape, dtype: x.dtype }], { axis: ax })[0]!;
}

export function reduceMean(x: Value, axes: readonly number[], keepdims = true): Value {
  const ax = axes.map((a) => (a < 0 ? x.rank + a : a));
  const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
  // opset 17: ReduceMean takes axes as an attribute (ReduceSum as an input)
  return x.graph.node('ReduceMean', [x], [{ shape, dtype: x.dtype }], { axes: ax, keepdims: keepdims ? 1 : 0 })[0]!;
}

/** log(sum(exp(x))) over axes (opset 17: axes attribute). */
export function reduceLogSumExp(x: Value, axes: readonly number[], keepdims = true): Value {
  const ax = axes.map((a) => (a < 0 ? x.rank + a : a));
  const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
  return x.graph.node('ReduceLogSumExp', [x], [{ shape, dtype: x.dtype }], { axes: ax, keepdims: keepdims ? 1 : 0 })[0]!;
}

export function reduceSum(x: Value, axes: readonly number[], keepdims = true): Value {
  const ax = axes.map((a) => (a < 0 ? x.rank + a : a));
  const shape = keepdims ? x.shape.map((d, i) => (ax.includes(i) ? 1 : d)) : x.shape.filter((_, i) => !ax.includes(i));
  return x.graph.node('ReduceSum', [x, int64(x.graph, ax, 'axes')], [{ shape, dtype: x.dtype }], { keepdims: keepdims ? 1 : 0 })[0]!;
}

export function cast(x: Value, to: DType): Value {
  if (x.dtype === to) return x;
  return x.graph.node('Cast', [x], [{ shape: x.shape, dtype: to }], { to: ONNX_DTYPE[to] })[0]!;
}

export const ONNX_DTYPE: Record<DType, number> = { float32: 1, uint8: 2, int8: 3, int32: 6, int64: 7, bool: 9, float64: 11 };

/** Conv2d; `padding` is symmetric, or [top, left, bottom, right] (ONNX order) for F.pad-style asymmetric padding. */
export function conv2d(x: Value, w: Value, b: Value | null, opts: { stride?: number; padding?: number | readonly [number, number, number, number]; groups?: number } = {}): Value {
  const stride = opts.stride ?? 1, groups = opts.groups ?? 1;
  const p = opts.padding ?? 0;
  const pads = typeof p === 'number' ? [p, p, p, p] : [...p];
  const [n, c, h, wd] = x.shape as [number, number, number, number];
  const [oc, icg, kh, kw] = w.shape as [number, number, number, number];
  if (x.rank !== 4 || w.rank !== 4 || c !== icg * groups) throw new Error(`Conv: input [${x.shape}] and weight [${w.shape}] do not fit`);
  const oh = Math.floor((h + pads[0]! + pads[2]! - kh) / stride) + 1;
  const ow = Math.floor((wd + pads[1]! + pads[3]! - kw) / stride) + 1;
  return x.graph.node('Conv', b ? [x, w, b] : [x, w], [{ shape: [n, oc, oh, ow], dtype: x.dtype }], {
    kernel_shape: [kh, kw], strides: [stride, stride], pads, dilations: [1, 1], group: groups,
  })[0]!;
}

/** F.interpolate(x, size=(outH, outW), mode='nearest') on NCHW (src index = floor(dst * in / out)). */
export function upsampleNearest(x: Value, outH: number, outW: number): Value {
  const g = x.graph;
  const [n, c] = x.shape as [number, number];
  const sizes = g.constant({ dtype: 'int64', shape: [4], data: BigInt64Array.from([n, c, outH, outW].map(BigInt)) }, 'sizes');
  return g.node('Resize', [x, null, null, sizes], [{ shape: [n, c, outH, outW], dtype: x.dtype }], {
    mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor',
  })[0]!;
}

/** Normalise over the last axes of size `shape` with ONNX LayerNormalization (opset 17). */
export function layerNormalization(x: Value, scale: Value, bias: Value, eps: number): Value {
  return x.graph.node('LayerNormalization', [x, scale, bias], [{ shape: x.shape, dtype: x.dtype }], { axis: x.rank - scale.rank, epsilon: { float: eps } })[0]!;
}

/** InstanceNormalization over axes 2.. with per-channel scale/bias. */
export function instanceNormalization(x: Value, scale: Value, bias: Value, eps: number): Value {
  return x.graph.node('InstanceNormalization', [x, scale, bias], [{ shape: x.shape, dtype: x.dtype }], { epsilon: { float: eps } })[0]!;
}

export function constFloat(g: Value['graph'], shape: readonly number[], data: Float32Array, hint = 'const'): Value {
  return g.constant({ dtype: 'float32', shape, data }, hint);
}

export type { ConstData };
