/**
 * Graph forms for a software WebGPU adapter (SwiftShader, the Vulkan driver of Debian's chromium).
 *
 * SwiftShader runs compute shaders on the CPU, and a workgroup that synchronises (workgroupBarrier, shared
 * memory) costs it far more than the arithmetic: ONNX Runtime's tiled MatMul/Gemm/Conv, Softmax and Reduce*
 * kernels all do, so on tiny-sd15 a UNet call took ~10 s, ~3/4 of it in attention's MatMul and Softmax
 * (measured with session profiling). The same maths through kernels that loop per output element without
 * barriers (Einsum, grouped Conv, elementwise, Slice) is 10-15x faster there per attention. On a
 * real GPU the tiled kernels are the fast ones, so these forms are chosen only for a software adapter.
 * CPU graphs never use them.
 */
import type { Value } from './ir.js';
import * as op from './ops.js';
import { engineDevice } from './session.js';
import { softwareAdapter } from './software-adapter.js';

/** Build graphs from barrier-free kernels (this process runs WebGPU on a software adapter). */
export function naiveKernels(): boolean {
  return engineDevice() === 'webgpu' && softwareAdapter();
}

const LETTERS = 'abcdefgh';

/**
 * Reshape whose one -1 is resolved by ONNX Runtime at run time (op.reshape writes the IR's static size): the
 * key axis may be shorter at run time than in the IR (reference attention's keysIfUsed).
 */
function reshapeRuntime(x: Value, shape: readonly number[]): Value {
  const known = shape.filter((d) => d !== -1).reduce((p, d) => p * d, 1);
  const resolved = shape.map((d) => (d === -1 ? x.shape.reduce((p, d2) => p * d2, 1) / known : d));
  const target = x.graph.constant({ dtype: 'int64', shape: [shape.length], data: BigInt64Array.from(shape.map((d) => BigInt(d))) }, 'shape');
  return x.graph.node('Reshape', [x, target], [{ shape: resolved, dtype: x.dtype }])[0]!;
}

/** Sum over the last axis (Einsum: one sequential sum per output element), keeping it as size 1. */
function sumLastAxis(x: Value): Value {
  const lead = LETTERS.slice(0, x.rank - 1);
  const s = x.graph.node('Einsum', [x], [{ shape: x.shape.slice(0, -1), dtype: x.dtype }], { equation: `${lead}z->${lead}` })[0]!;
  return op.reshape(s, [...x.shape.slice(0, -1), 1]);
}

/** Mean over the last axis, as ReduceMean computes it (the sum, then divided by the count). */
export function meanLastAxis(x: Value): Value {
  return op.div(sumLastAxis(x), x.dim(-1));
}

/**
 * Max over the last axis (kept as size 1) as a tree of elementwise Max over the two halves, the second half taken
 * from the end ([-h:]), so an odd width overlaps one element and a tensor shorter at run time (a single key, see
 * keysIfUsed) still reduces correctly. ReduceMax and GlobalMaxPool cost SwiftShader 4-17x more.
 */
function maxLastAxis(x: Value): Value {
  const g = x.graph;
  const int64 = (v: number): Value => g.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.from([BigInt(v)]) }, 'slice');
  let m = x;
  for (let w = x.dim(-1); w > 1;) {
    const h = Math.ceil(w / 2);
    const shape = [...x.shape.slice(0, -1), h];
    const head = g.node('Slice', [m, int64(0), int64(h), int64(-1)], [{ shape, dtype: x.dtype }])[0]!;
    const tail = g.node('Slice', [m, int64(-h), int64(Number.MAX_SAFE_INTEGER), int64(-1)], [{ shape, dtype: x.dtype }])[0]!;
    m = g.node('Max', [head, tail], [{ shape, dtype: x.dtype }])[0]!;
    w = h;
  }
  return m;
}

/** Softmax over the last axis: exp(x - max) / sum, the max a tree of elementwise Max, the sum an Einsum. */
export function softmaxLastAxis(x: Value): Value {
  const e = op.exp(op.sub(x, maxLastAxis(x)));
  return op.div(e, sumLastAxis(e));
}

/**
 * softmax(scale Q K^T) V per head on [B, N, H*D] projections (values may have another head size), heads split by
 * the Einsum subscripts instead of transposes. Keys and values are reshaped with -1 for their length, so a
 * run-time shorter key set (reference attention's unused terms) flows through.
 */
export function einsumAttention(q: Value, k: Value, v: Value, heads: number, scale: number): Value {
  const g = q.graph;
  const [b, n, cq] = q.shape as [number, number, number];
  const m = k.dim(1), dv = v.dim(2) / heads;
  const q4 = op.reshape(q, [b, n, heads, cq / heads]);
  const k4 = reshapeRuntime(k, [b, -1, heads, cq / heads]);
  const v4 = reshapeRuntime(v, [b, -1, heads, dv]);
  const scores = op.mul(g.node('Einsum', [q4, k4], [{ shape: [b, heads, n, m], dtype: q.dtype }], { equation: 'bnhd,bmhd->bhnm' })[0]!, scale);
  const out = g.node('Einsum', [softmaxLastAxis(scores), v4], [{ shape: [b, n, heads, dv], dtype: q.dtype }], { equation: 'bhnm,bmhd->bnhd' })[0]!;
  return op.reshape(out, [b, n, heads * dv]);
}

/** softmax(scale Q K^T + bias) V on split heads [B, H, N, D] (the form CLIP's masked attention uses). */
export function einsumAttentionCore(q: Value, k: Value, v: Value, scale: number, bias?: Value): Value {
  const g = q.graph;
  const [b, h, n] = q.shape as [number, number, number];
  let scores = op.mul(g.node('Einsum', [q, k], [{ shape: [b, h, n, k.dim(2)], dtype: q.dtype }], { equation: 'bhnd,bhmd->bhnm' })[0]!, scale);
  if (bias) scores = op.add(scores, bias);
  return g.node('Einsum', [softmaxLastAxis(scores), v], [{ shape: [b, h, n, v.dim(3)], dtype: q.dtype }], { equation: 'bhnm,bhmd->bhnd' })[0]!;
}

/**
 * Conv with group 1 as the same conv over the input twice with group 2: each output channel still sums over
 * every input channel (the same weights), but ONNX Runtime's WebGPU provider then runs its per-output grouped
 * kernel instead of the tiled matmul one (3x faster on SwiftShader at tiny-sd15's sizes).
 */
export function groupedConv2d(x: Value, w: Value, b: Value | null, opts: { stride: number; padding: number | readonly [number, number, number, number] }): Value | undefined {
  if (w.dim(0) % 2 !== 0) return undefined;
  return op.conv2d(op.concat([x, x], 1), w, b, { ...opts, groups: 2 });
}

/** x W^T (+ b) on [rows, in] with W as stored [out, in]: an Einsum instead of the tiled Gemm. */
export function einsumLinear(x: Value, w: Value, b: Value | null): Value {
  const y = x.graph.node('Einsum', [x, w], [{ shape: [x.dim(0), w.dim(0)], dtype: x.dtype }], { equation: 'nc,oc->no' })[0]!;
  return b ? op.add(y, b) : y;
}
