/**
 * Reverse-mode differentiation of the IR. `gradients(g, loss, wrt)` appends the backward graph to `g`
 * (so it runs on the same engine, with ONNX Runtime keeping the forward activations it reads) and
 * returns d loss / d wrt. One rule per operator, written with the same operators; rules only run for
 * values that depend on `wrt`.
 */
import type { Graph, Node, Value } from './ir.js';
import * as op from './ops.js';

interface RuleArgs {
  readonly node: Node;
  /** Forward inputs (null for omitted optional inputs). */
  readonly x: readonly (Value | null)[];
  /** Forward outputs. */
  readonly y: readonly Value[];
  /** Cotangent of the first output. */
  readonly g: Value;
  /** Which inputs need a gradient. */
  readonly need: readonly boolean[];
}

type Rule = (a: RuleArgs) => (Value | null)[];

function int64(g: Graph, values: readonly number[]): Value {
  return g.constant({ dtype: 'int64', shape: [values.length], data: BigInt64Array.from(values.map(BigInt)) }, 'shape');
}

/** Sum a broadcast gradient back to `shape`. */
export function unbroadcast(grad: Value, shape: readonly number[]): Value {
  if (grad.shape.join(',') === shape.join(',')) return grad;
  const lead = grad.rank - shape.length;
  const axes: number[] = [];
  for (let i = 0; i < grad.rank; i++) {
    if (i < lead || (shape[i - lead] === 1 && grad.shape[i] !== 1)) axes.push(i);
  }
  const summed = axes.length ? op.reduceSum(grad, axes, true) : grad;
  return op.reshape(summed, shape);
}

function expandTo(v: Value, shape: readonly number[]): Value {
  if (v.shape.join(',') === shape.join(',')) return v;
  return v.graph.node('Expand', [v, int64(v.graph, shape)], [{ shape, dtype: v.dtype }])[0]!;
}

const lastTwo = (v: Value): Value => op.transpose(v, [...Array(v.rank - 2).keys(), v.rank - 1, v.rank - 2]);

function attrInts(node: Node, name: string, fallback: number[]): number[] {
  const a = node.attrs[name];
  return Array.isArray(a) ? a : fallback;
}

function attrFloat(node: Node, name: string, fallback: number): number {
  const a = node.attrs[name];
  return typeof a === 'object' && a !== null && 'float' in a ? a.float : fallback;
}

function constInts(g: Graph, v: Value | null): number[] {
  const d = v ? g.constantData(v) : undefined;
  if (!d) throw new Error('autodiff: expected a constant integer input');
  return Array.from(d.data as BigInt64Array, Number);
}

/** Normalisation backward over `axes`: with xhat = (x - mean) / sigma and gh = dL/dxhat, dx = (gh - mean(gh) - xhat mean(gh xhat)) / sigma. */
function normBackward(x: Value, gh: Value, axes: number[], eps: number): Value {
  const mean = op.reduceMean(x, axes);
  const centered = op.sub(x, mean);
  const variance = op.reduceMean(op.mul(centered, centered), axes);
  const inv = op.div(op.scalar(x, 1), op.sqrt(op.add(variance, eps)));
  const xhat = op.mul(centered, inv);
  const inner = op.add(op.reduceMean(gh, axes), op.mul(xhat, op.reduceMean(op.mul(gh, xhat), axes)));
  return op.mul(op.sub(gh, inner), inv);
}

const RULES: Record<string, Rule> = {
  Identity: ({ g }) => [g],
  Add: ({ x, g, need }) => [need[0] ? unbroadcast(g, x[0]!.shape) : null, need[1] ? unbroadcast(g, x[1]!.shape) : null],
  Sub: ({ x, g, need }) => [need[0] ? unbroadcast(g, x[0]!.shape) : null, need[1] ? unbroadcast(op.neg(g), x[1]!.shape) : null],
  Mul: ({ x, g, need }) => [need[0] ? unbroadcast(op.mul(g, x[1]!), x[0]!.shape) : null, need[1] ? unbroadcast(op.mul(g, x[0]!), x[1]!.shape) : null],
  Div: ({ x, y, g, need }) => [
    need[0] ? unbroadcast(op.div(g, x[1]!), x[0]!.shape) : null,
    need[1] ? unbroadcast(op.neg(op.div(op.mul(g, y[0]!), x[1]!)), x[1]!.shape) : null,
  ],
  Neg: ({ g }) => [op.neg(g)],
  Exp: ({ y, g }) => [op.mul(g, y[0]!)],
  Log: ({ x, g }) => [op.div(g, x[0]!)],
  Sqrt: ({ y, g }) => [op.div(g, op.mul(y[0]!, 2))],
  Sigmoid: ({ y, g }) => [op.mul(g, op.mul(y[0]!, op.rsub(1, y[0]!)))],
  Tanh: ({ y, g }) => [op.mul(g, op.rsub(1, op.mul(y[0]!, y[0]!)))],
  Relu: ({ x, g }) => [op.where(op.greater(x[0]!, 0), g, op.mul(g, 0))],
  Abs: ({ x, g }) => [op.where(op.greater(x[0]!, 0), g, op.neg(g))],
  Sin: ({ x, g }) => [op.mul(g, op.cos(x[0]!))],
  Cos: ({ x, g }) => [op.neg(op.mul(g, op.sin(x[0]!)))],
  Erf: ({ x, g }) => [op.mul(g, op.mul(op.exp(op.neg(op.mul(x[0]!, x[0]!))), 2 / Math.sqrt(Math.PI)))],
  Acos: ({ x, g }) => [op.neg(op.div(g, op.sqrt(op.rsub(1, op.mul(x[0]!, x[0]!)))))],
  Clip: ({ node, x, g }) => {
    const v = x[0]!;
    const lo = node.inputValues[1] ? op.greater(op.rsub(0, op.sub(x[1]!, v)), -1e-30) : undefined; // v >= min
    const hi = node.inputValues[2] ? op.greater(op.rsub(0, op.sub(v, x[2]!)), -1e-30) : undefined; // v <= max
    let out = g;
    if (lo) out = op.where(lo, out, op.mul(g, 0));
    if (hi) out = op.where(hi, out, op.mul(g, 0));
    return [out, null, null];
  },
  Where: ({ x, g, need }) => [
    null,
    need[1] ? unbroadcast(op.where(x[0]!, g, op.mul(g, 0)), x[1]!.shape) : null,
    need[2] ? unbroadcast(op.where(x[0]!, op.mul(g, 0), g), x[2]!.shape) : null,
  ],
  Cast: ({ g }) => [g],
  Softmax: ({ y, g }) => {
    const s = y[0]!;
    return [op.mul(s, op.sub(g, op.reduceSum(op.mul(g, s), [-1])))];
  },
  ReduceLogSumExp: ({ node, x, y, g }) => {
    const axes = attrInts(node, 'axes', []);
    const keep = node.attrs.keepdims !== 0;
    const shapeKeep = x[0]!.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    const gy = keep ? g : op.reshape(g, shapeKeep);
    const yy = keep ? y[0]! : op.reshape(y[0]!, shapeKeep);
    return [op.mul(gy, op.exp(op.sub(x[0]!, yy)))];
  },
  ReduceMean: ({ node, x, g }) => {
    const axes = attrInts(node, 'axes', [...x[0]!.shape.keys()]);
    const n = axes.reduce((p, a) => p * x[0]!.shape[a]!, 1);
    const keepShape = x[0]!.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return [expandTo(op.div(op.reshape(g, keepShape), n), x[0]!.shape)];
  },
  ReduceSum: ({ node, x, g }) => {
    const axes = constInts(x[0]!.graph, node.inputValues[1] ?? null);
    const keepShape = x[0]!.shape.map((d, i) => (axes.includes(i) ? 1 : d));
    return [expandTo(op.reshape(g, keepShape), x[0]!.shape), null];
  },
  Reshape: ({ x, g }) => [op.reshape(g, x[0]!.shape), null],
  Expand: ({ x, g }) => [unbroadcast(g, x[0]!.shape), null],
  Transpose: ({ node, g }) => {
    const perm = attrInts(node, 'perm', []);
    const inv = perm.map((_, i) => perm.indexOf(i));
    return [op.transpose(g, inv)];
  },
  Concat: ({ node, x, g, need }) => {
    const axis = node.attrs.axis as number;
    let at = 0;
    return x.map((v, i) => {
      const part = op.slice(g, axis, at, at + v!.dim(axis));
      at += v!.dim(axis);
      return need[i] ? part : null;
    });
  },
  Slice: ({ node, x, g }) => {
    const gr = x[0]!.graph;
    const [start] = constInts(gr, node.inputValues[1] ?? null);
    const [axis] = constInts(gr, node.inputValues[3] ?? null);
    const size = x[0]!.dim(axis!);
    const pads = Array<number>(2 * x[0]!.rank).fill(0);
    pads[axis!] = start!;
    pads[x[0]!.rank + axis!] = size - start! - g.dim(axis!);
    return [gr.node('Pad', [g, int64(gr, pads)], [{ shape: x[0]!.shape, dtype: g.dtype }], { mode: 'constant' })[0]!, null, null, null];
  },
  Gather: ({ node, x, g }) => {
    const gr = x[0]!.graph;
    const axis = node.attrs.axis as number;
    const idx = constInts(gr, node.inputValues[1] ?? null);
    // Sum of one-hot selections: scatter-add through a constant [n_out, n_in] matrix on the gathered axis.
    const nIn = x[0]!.dim(axis);
    const m = new Float32Array(idx.length * nIn);
    idx.forEach((j, i) => { m[i * nIn + j] = 1; });
    const sel = op.constFloat(gr, [idx.length, nIn], m, 'scatter');
    const moved = op.transpose(g, [axis, ...[...g.shape.keys()].filter((a) => a !== axis)]);
    const flat = op.reshape(moved, [idx.length, -1]);
    const back = op.matmul(op.transpose(sel, [1, 0]), flat);
    const restShape = [nIn, ...g.shape.filter((_, a) => a !== axis)];
    const restored = op.reshape(back, restShape);
    const perm = [...Array(g.rank).keys()].map((a) => (a < axis ? a + 1 : a === axis ? 0 : a));
    return [op.transpose(restored, perm), null];
  },
  MatMul: ({ x, g, need }) => [
    need[0] ? unbroadcast(op.matmul(g, lastTwo(x[1]!)), x[0]!.shape) : null,
    need[1] ? unbroadcast(op.matmul(lastTwo(x[0]!), g), x[1]!.shape) : null,
  ],
  Gemm: ({ node, x, g, need }) => {
    if (node.attrs.transA || (node.attrs.transB ?? 0) !== 1) throw new Error('autodiff: Gemm is differentiated for transB=1 only');
    return [
      need[0] ? op.matmul(g, x[1]!) : null,
      need[1] ? op.matmul(op.transpose(g, [1, 0]), x[0]!) : null,
      need[2] && x[2] ? unbroadcast(g, x[2]!.shape) : null,
    ];
  },
  Conv: ({ node, x, g, need }) => {
    if ((node.attrs.group ?? 1) !== 1) throw new Error('autodiff: grouped convolutions are not differentiated');
    const gr = g.graph;
    const [s] = attrInts(node, 'strides', [1, 1]) as [number];
    const pads = attrInts(node, 'pads', [0, 0, 0, 0]);
    const xs = x[0]!, w = x[1]!;
    const [, , h, wd] = xs.shape as [number, number, number, number];
    const [, , kh, kw] = w.shape as [number, number, number, number];
    const [, , ho, wo] = g.shape as [number, number, number, number];
    const out: (Value | null)[] = [null, null, null];
    if (need[0]) {
      const outPad = [h - ((ho - 1) * s - pads[0]! - pads[2]! + kh), wd - ((wo - 1) * s - pads[1]! - pads[3]! + kw)];
      out[0] = gr.node('ConvTranspose', [g, w], [{ shape: xs.shape, dtype: g.dtype }], { strides: [s, s], pads, kernel_shape: [kh, kw], output_padding: outPad })[0]!;
    }
    if (need[1]) {
      // dW[o, i] = sum_n conv(x[n, i], g[n, o]) with the forward stride as kernel dilation: batch and channels swap roles.
      const xt = op.transpose(xs, [1, 0, 2, 3]);
      const gt = op.transpose(g, [1, 0, 2, 3]);
      const [i, n] = xt.shape as [number, number];
      const oh = h + pads[0]! + pads[2]! - (ho - 1) * s, ow = wd + pads[1]! + pads[3]! - (wo - 1) * s;
      const dw = gr.node('Conv', [xt, gt], [{ shape: [i, g.dim(1), oh, ow], dtype: g.dtype }], { kernel_shape: [ho, wo], pads, strides: [1, 1], dilations: [s, s], group: 1 })[0]!;
      void n;
      out[1] = op.transpose(op.slice(op.slice(dw, 2, 0, kh), 3, 0, kw), [1, 0, 2, 3]);
    }
    if (need[2] && x[2]) out[2] = op.reduceSum(g, [0, 2, 3], false);
    return out;
  },
  Resize: ({ x, g }) => {
    const [n, c, h, w] = x[0]!.shape as [number, number, number, number];
    const [, , oh, ow] = g.shape as [number, number, number, number];
    if (oh % h !== 0 || ow % w !== 0) throw new Error('autodiff: nearest resize is differentiated for integer factors only');
    const fh = oh / h, fw = ow / w;
    return [op.reshape(op.reduceSum(op.reshape(g, [n, c, h, fh, w, fw]), [3, 5], false), [n, c, h, w]), null, null, null];
  },
  LayerNormalization: ({ node, x, g, need }) => {
    const v = x[0]!, scale = x[1]!, bias = x[2];
    const axis = node.attrs.axis as number;
    const axes = [...Array(v.rank - axis).keys()].map((i) => i + axis);
    const eps = attrFloat(node, 'epsilon', 1e-5);
    const out: (Value | null)[] = [null, null, null];
    if (need[0]) out[0] = normBackward(v, op.mul(g, scale), axes, eps);
    if (need[1] || need[2]) {
      const mean = op.reduceMean(v, axes);
      const centered = op.sub(v, mean);
      const xhat = op.div(centered, op.sqrt(op.add(op.reduceMean(op.mul(centered, centered), axes), eps)));
      if (need[1]) out[1] = unbroadcast(op.mul(g, xhat), scale.shape);
      if (need[2] && bias) out[2] = unbroadcast(g, bias.shape);
    }
    return out;
  },
  InstanceNormalization: ({ node, x, g, need }) => {
    const v = x[0]!, scale = x[1]!;
    const axes = [...Array(v.rank - 2).keys()].map((i) => i + 2);
    const eps = attrFloat(node, 'epsilon', 1e-5);
    const bshape = [scale.dim(0), ...Array<number>(v.rank - 2).fill(1)];
    const out: (Value | null)[] = [null, null, null];
    if (need[0]) out[0] = normBackward(v, op.mul(g, op.reshape(scale, bshape)), axes, eps);
    if (need[1] || need[2]) {
      const mean = op.reduceMean(v, axes);
      const centered = op.sub(v, mean);
      const xhat = op.div(centered, op.sqrt(op.add(op.reduceMean(op.mul(centered, centered), axes), eps)));
      if (need[1]) out[1] = op.reshape(unbroadcast(op.mul(g, xhat), bshape), [scale.dim(0)]);
      if (need[2]) out[2] = op.reshape(unbroadcast(g, bshape), [scale.dim(0)]);
    }
    return out;
  },
  MultiHeadAttention: ({ node, x, g, need }) => {
    // Recompute the attention probabilities (the forward kept none), then the standard softmax-attention backward.
    const heads = node.attrs.num_heads as number;
    const scale = attrFloat(node, 'scale', (x[0]!.dim(2) / heads) ** -0.5);
    const split = (v: Value): Value => { const [b, n, c] = v.shape as [number, number, number]; return op.transpose(op.reshape(v, [b, n, heads, c / heads]), [0, 2, 1, 3]); };
    const merge = (v: Value): Value => { const [b, h, n, d] = v.shape as [number, number, number, number]; return op.reshape(op.transpose(v, [0, 2, 1, 3]), [b, n, h * d]); };
    const q = split(x[0]!), k = split(x[1]!), v = split(x[2]!), gh = split(g);
    const p = op.softmax(op.mul(op.matmul(q, lastTwo(k)), scale), -1);
    const dp = op.matmul(gh, lastTwo(v));
    const ds = op.mul(op.mul(p, op.sub(dp, op.reduceSum(op.mul(dp, p), [-1]))), scale);
    return [
      need[0] ? merge(op.matmul(ds, k)) : null,
      need[1] ? merge(op.matmul(lastTwo(ds), q)) : null,
      need[2] ? merge(op.matmul(lastTwo(p), gh)) : null,
    ];
  },
  Pad: ({ node, x, g }) => {
    const gr = g.graph;
    const pads = constInts(gr, node.inputValues[1] ?? null);
    let out = g;
    const r = x[0]!.rank;
    for (let a = 0; a < r; a++) out = op.slice(out, a, pads[a]!, pads[a]! + x[0]!.dim(a));
    return [out, null];
  },
};

/** Ops whose outputs carry no gradient. */
const NON_DIFFERENTIABLE = new Set(['Greater', 'Equal', 'Less', 'Shape', 'ArgMax', 'GreaterOrEqual', 'LessOrEqual', 'And', 'Or', 'Not']);

/**
 * Append the backward graph of `loss` (any shape; its cotangent is `seed`, default ones) and return
 * d loss / d each of `wrt` (a zero tensor where loss does not depend on it).
 */
export function gradients(g: Graph, loss: Value, wrt: readonly Value[], seed?: Value): Value[] {
  // Forward sweep: which values depend on wrt.
  const depends = new Set(wrt.map((v) => v.name));
  for (const n of g.nodes) {
    if (NON_DIFFERENTIABLE.has(n.op)) continue;
    if (n.inputValues.some((v) => v !== null && depends.has(v.name))) for (const o of n.outputValues) depends.add(o.name);
  }
  if (!depends.has(loss.name)) return wrt.map((v) => op.mul(v, 0));
  const grads = new Map<string, Value>();
  grads.set(loss.name, seed ?? op.constFloat(g, loss.shape, new Float32Array(loss.shape.reduce((p, d) => p * d, 1)).fill(1), 'seed'));
  const accumulate = (v: Value, d: Value): void => {
    const prev = grads.get(v.name);
    grads.set(v.name, prev ? op.add(prev, d) : d);
  };
  const nodes = [...g.nodes];
  for (let i = nodes.length - 1; i >= 0; i--) {
    const n = nodes[i]!;
    const out = n.outputValues[0];
    if (!out || !grads.has(out.name) || NON_DIFFERENTIABLE.has(n.op)) continue;
    const need = n.inputValues.map((v) => v !== null && depends.has(v.name) && v.dtype !== 'int64' && v.dtype !== 'bool');
    if (!need.some(Boolean)) continue;
    const rule = RULES[n.op];
    if (!rule) throw new Error(`autodiff: no gradient rule for ${n.op}`);
    const dx = rule({ node: n, x: n.inputValues, y: n.outputValues, g: grads.get(out.name)!, need });
    n.inputValues.forEach((v, k) => { if (v && need[k] && dx[k]) accumulate(v, dx[k]!); });
  }
  return wrt.map((v) => grads.get(v.name) ?? op.mul(v, 0));
}
