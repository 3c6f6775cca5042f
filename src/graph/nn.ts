/**
 * Layers with weights, as PyTorch defines them, built from IR operators. Each takes a WeightsView
 * positioned at the module (`vb.pp('to_q')`) and checks the weight shapes it expects.
 */
import { WeightsView, type LowRankTerm } from '../io/weights.js';
import type { Graph, Value } from './ir.js';
import * as op from './ops.js';
import { engineDevice } from './session.js';
import { int8Conv2d, int8Linear } from './quantize.js';
import { einsumAttention, einsumAttentionCore, einsumLinear, groupedConv2d, meanLastAxis, naiveKernels } from './software-gpu.js';

const sourceTags = new WeakMap<object, string>();
let nextTag = 0;

/** Graph names of weights: unique per checkpoint part, since a UNet and its ControlNet share key names. */
function weightName(vb: WeightsView, name: string): string {
  let tag = sourceTags.get(vb.source);
  // A transformed source's fingerprint goes into the names, so an on-disk cached graph of other weights never matches.
  if (!tag) { tag = `m${nextTag++}${vb.source.fingerprint ? `@${vb.source.fingerprint}` : ''}`; sourceTags.set(vb.source, tag); }
  return `${tag}/${vb.key(name)}`;
}

export function param(g: Graph, vb: WeightsView, name: string, shape?: readonly (number | null)[]): Value {
  const lowRank = vb.source.lowRankTerms?.(vb.key(name));
  if (lowRank) return withLowRankTerms(g, vb, name, shape, lowRank.base, lowRank.terms);
  return g.weight(weightName(vb, name), vb.forGraph(name, shape));
}

/**
 * A merged LoRA weight as graph nodes: the stored tensor (still read by ONNX Runtime from its file) plus
 * factor * (up @ down) per term, in PEFT's merge order and rounding; ONNX Runtime's constant folding
 * computes it once when the session is built, so no merged copy passes through JavaScript.
 */
function withLowRankTerms(g: Graph, vb: WeightsView, name: string, shape: readonly (number | null)[] | undefined, base: WeightsView['source'], terms: readonly LowRankTerm[]): Value {
  const plain = new WeightsView(base, vb.prefix);
  let w = g.weight(weightName(plain, name), plain.forGraph(name, shape));
  terms.forEach((t, i) => {
    const up = g.weight(`${weightName(vb, name)}.lora${i}.up`, t.up);
    const down = g.weight(`${weightName(vb, name)}.lora${i}.down`, t.down);
    w = op.add(w, op.mul(op.reshape(op.matmul(up, down), w.shape), t.factor));
  });
  return w;
}

/** nn.Linear: y = x W^T + b over the last axis (Gemm with transB, so W is used as stored). */
export function linear(x: Value, vb: WeightsView, inF: number, outF: number, bias = true): Value {
  const g = x.graph;
  const q = int8Linear(x, vb, inF, outF, bias);
  if (q) return q;
  const w = param(g, vb, 'weight', [outF, inF]);
  const b = bias ? param(g, vb, 'bias', [outF]) : null;
  const lead = x.shape.slice(0, -1);
  const x2 = op.reshape(x, [-1, inF]);
  if (naiveKernels()) return op.reshape(einsumLinear(x2, w, b), [...lead, outF]);
  const inputs = b ? [x2, w, b] : [x2, w];
  const [y] = g.node('Gemm', inputs, [{ shape: [x2.dim(0), outF], dtype: x.dtype }], { transB: 1 });
  return op.reshape(y!, [...lead, outF]);
}

/** nn.Conv2d with square kernel, stride and padding. */
export function conv2d(x: Value, vb: WeightsView, inC: number, outC: number, kernel: number, opts: { stride?: number; padding?: number | readonly [number, number, number, number]; bias?: boolean } = {}): Value {
  const g = x.graph;
  const q = int8Conv2d(x, vb, inC, outC, kernel, opts);
  if (q) return q;
  const w = param(g, vb, 'weight', [outC, inC, kernel, kernel]);
  const b = opts.bias === false ? null : param(g, vb, 'bias', [outC]);
  const conv = { stride: opts.stride ?? 1, padding: opts.padding ?? 0 };
  return (naiveKernels() ? groupedConv2d(x, w, b, conv) : undefined) ?? op.conv2d(x, w, b, conv);
}

/** A [C] parameter reshaped to broadcast over NCHW. */
function channelParam(g: Graph, vb: WeightsView, name: string, c: number): Value {
  return op.reshape(param(g, vb, name, [c]), [c, 1, 1]);
}

/**
 * nn.GroupNorm on NCHW (or [N, C, L]): InstanceNormalization over [N, G, C/G * spatial] gives each
 * group's mean and variance (biased, like PyTorch), then the per-channel affine.
 */
export function groupNorm(x: Value, vb: WeightsView, groups: number, eps: number): Value {
  const g = x.graph;
  const [n, c] = x.shape as [number, number];
  if (c % groups !== 0) throw new Error(`GroupNorm: ${c} channels not divisible into ${groups} groups`);
  const grouped = op.reshape(x, [n, groups, -1]);
  const ones = op.constFloat(g, [groups], new Float32Array(groups).fill(1), 'ones');
  const zeros = op.constFloat(g, [groups], new Float32Array(groups), 'zeros');
  // WebGPU: two-pass mean/variance from exact primitives (the provider's fused normalization kernels are not float32-faithful).
  const normed = op.reshape(engineDevice() === 'webgpu' ? twoPassNormalize(grouped, eps) : op.instanceNormalization(grouped, ones, zeros, eps), x.shape);
  const gamma = x.rank === 4 ? channelParam(g, vb, 'weight', c) : op.reshape(param(g, vb, 'weight', [c]), [c, 1]);
  const beta = x.rank === 4 ? channelParam(g, vb, 'bias', c) : op.reshape(param(g, vb, 'bias', [c]), [c, 1]);
  return op.add(op.mul(normed, gamma), beta);
}

/** (x - mean) / sqrt(var + eps) over the last axis, variance from the centred values (biased, like PyTorch). */
function twoPassNormalize(x: Value, eps: number): Value {
  const mean = naiveKernels() ? meanLastAxis : (v: Value): Value => op.reduceMean(v, [-1]);
  const centred = op.sub(x, mean(x));
  return op.div(centred, op.sqrt(op.add(mean(op.mul(centred, centred)), eps)));
}

/** nn.LayerNorm over the last axis. */
export function layerNorm(x: Value, vb: WeightsView, dim: number, eps: number): Value {
  const g = x.graph;
  if (engineDevice() === 'webgpu') return op.add(op.mul(twoPassNormalize(x, eps), param(g, vb, 'weight', [dim])), param(g, vb, 'bias', [dim]));
  return op.layerNormalization(x, param(g, vb, 'weight', [dim]), param(g, vb, 'bias', [dim]), eps);
}

export const silu = (x: Value): Value => op.mul(x, op.sigmoid(x));

/** Exact (erf) GELU, as torch.nn.functional.gelu. */
export function gelu(x: Value): Value {
  return op.mul(op.mul(x, 0.5), op.add(op.erf(op.mul(x, Math.SQRT1_2)), 1));
}

/** CLIP's quick_gelu: x * sigmoid(1.702 x). */
export const quickGelu = (x: Value): Value => op.mul(x, op.sigmoid(op.mul(x, 1.702)));

export type Activation = 'gelu' | 'quick_gelu' | 'silu' | 'relu';

export function activation(name: Activation, x: Value): Value {
  switch (name) {
    case 'gelu': return gelu(x);
    case 'quick_gelu': return quickGelu(x);
    case 'silu': return silu(x);
    case 'relu': return op.relu(x);
  }
}

/** [B, N, H*D] -> [B, H, N, D] */
export function splitHeads(x: Value, heads: number): Value {
  const [b, n, c] = x.shape as [number, number, number];
  return op.transpose(op.reshape(x, [b, n, heads, c / heads]), [0, 2, 1, 3]);
}

/** [B, H, N, D] -> [B, N, H*D] */
export function mergeHeads(x: Value): Value {
  const [b, h, n, d] = x.shape as [number, number, number, number];
  return op.reshape(op.transpose(x, [0, 2, 1, 3]), [b, n, h * d]);
}

/**
 * softmax(scale Q K^T) V per head on [B, N, H*D] projections, as ONNX Runtime's fused MultiHeadAttention
 * (com.microsoft): the [B, H, Nq, Nk] score tensor is never materialised (1 GiB per call at 512x512
 * in SD's first decoder level). Its gradient rule recomputes the scores (autodiff.ts).
 */
export function fusedAttention(q: Value, k: Value, v: Value, heads: number, scale: number): Value {
  // ONNX Runtime 1.30's WebGPU MultiHeadAttention is off by ~20% of the output's magnitude (measured on
  // SwiftShader); on that device the explicit matmul/softmax form is float32-faithful (1e-6).
  if (naiveKernels()) return einsumAttention(q, k, v, heads, scale);
  if (engineDevice() === 'webgpu') return mergeHeads(attentionCore(splitHeads(q, heads), splitHeads(k, heads), splitHeads(v, heads), scale));
  return q.graph.node('MultiHeadAttention', [q, k, v], [{ shape: [q.dim(0), q.dim(1), v.dim(2)], dtype: q.dtype }], { num_heads: heads, scale: { float: scale } }, 'com.microsoft')[0]!;
}

/** softmax(scale * Q K^T + bias) V per head; q/k/v are [B, H, N, D], result [B, H, Nq, D]. */
export function attentionCore(q: Value, k: Value, v: Value, scale: number, bias?: Value): Value {
  if (naiveKernels()) return einsumAttentionCore(q, k, v, scale, bias);
  let scores = op.mul(op.matmul(q, op.transpose(k, [0, 1, 3, 2])), scale);
  if (bias) scores = op.add(scores, bias);
  return op.matmul(op.softmax(scores, -1), v);
}

/**
 * Interpolation matrix of torch's bilinear resize along one axis (align_corners=False, no antialias):
 * src = (dst + 0.5) * in/out - 0.5, clamped at 0; weights (1 - l, l) on floor(src) and the next index.
 */
function bilinearMatrix(inSize: number, outSize: number): Float32Array {
  const m = new Float32Array(outSize * inSize);
  const scale = inSize / outSize;
  for (let o = 0; o < outSize; o++) {
    const src = Math.max((o + 0.5) * scale - 0.5, 0);
    const i0 = Math.min(Math.floor(src), inSize - 1);
    const i1 = Math.min(i0 + 1, inSize - 1);
    const l = src - i0;
    m[o * inSize + i0] += 1 - l;
    m[o * inSize + i1] += l;
  }
  return m;
}

/**
 * F.interpolate(x, size=(oh, ow), mode='bilinear', align_corners=False) on NCHW, written as two matmuls
 * with constant interpolation matrices: exactly linear, so its gradient is the MatMul rule.
 */
export function bilinearResize(x: Value, oh: number, ow: number): Value {
  const g = x.graph;
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const ah = op.constFloat(g, [oh, h], bilinearMatrix(h, oh), 'bilinear_h');
  const awT = op.transpose(op.constFloat(g, [ow, w], bilinearMatrix(w, ow), 'bilinear_w'), [1, 0]);
  const rows = op.matmul(ah, op.reshape(x, [n * c, h, w]));
  return op.reshape(op.matmul(rows, awT), [n, c, oh, ow]);
}
