/**
 * The int8 path (`--precision int8`): linear layers and convolutions of the denoiser and VAE with weights
 * quantized per output channel (symmetric, int8, quantized here in JavaScript when the graph is built and
 * stored as initializers) and activations quantized at run time per tensor (uint8 with a zero point, by
 * ONNX Runtime). Everything else stays float32, as do the layers known to break under 8 bits (see
 * `QUANTIZED_LAYERS`). A graph is float32 unless its builder marks it with `useInt8`.
 *
 * Kernels (measured on the development CPU, see the issue note): linear layers run as com.microsoft
 * DynamicQuantizeMatMul; convolutions as uint8 im2col (channels last) + com.microsoft MatMulIntegerToFloat,
 * both MLAS's u8 x s8 GEMM. ConvInteger with s8 weights falls to a scalar kernel (4x slower than
 * float32 here) and QLinearConv needs a fixed output scale (static calibration), so neither is used.
 */
import fs from 'node:fs';
import { InputError } from '../errors.js';
import type { WeightsView } from '../io/weights.js';
import type { Graph, Value } from './ir.js';
import * as op from './ops.js';
import { engineDevice } from './session.js';

export type Precision = 'fp32' | 'int8';
export const PRECISIONS: readonly Precision[] = ['fp32', 'int8'];

const int8Graphs = new WeakSet<Graph>();

/** Mark a graph for int8 (its quantizable layers are emitted quantized); fp32 leaves it untouched. */
export function usePrecision<G extends Graph>(g: G, precision: Precision): G {
  if (precision === 'int8') {
    if (engineDevice() !== 'cpu') throw new InputError(`--precision int8 runs on --device cpu only (ONNX Runtime's ${engineDevice()} provider has no dynamically quantized kernels); use --precision fp32 on ${engineDevice()}`);
    int8Graphs.add(g);
  }
  return g;
}

export function isInt8(g: Graph): boolean { return int8Graphs.has(g); }

/** The part of a session-cache key that precision decides ('' for float32, so float32 keys are unchanged; int8: with the weight range). */
export function precisionKey(precision: Precision): string { return precision === 'fp32' ? '' : `:${precision}w${weightRange()}`; }

export function checkPrecision(value: string, flag = '--precision'): Precision {
  if (!(PRECISIONS as readonly string[]).includes(value)) throw new InputError(`${flag}: ${JSON.stringify(value)} is not a precision (expected fp32 or int8)`);
  return value as Precision;
}

/**
 * The layers that are quantized, by weight key; everything else stays float32: conv_in/conv_out, the time
 * embedding and each resnet's time_emb_proj, cross-attention K/V (attn2.to_k/to_v: 77 text tokens, cheap),
 * ControlNet's condition embedding and zero convolutions, the VAE's (post_)quant_conv, and any layer a
 * method or adapter adds. Attention scores/softmax/value product, norms and activations are not layers here.
 */
const QUANTIZED_LAYERS: readonly RegExp[] = [
  /(^|\.)resnets\.\d+\.(conv1|conv2|conv_shortcut)\.weight$/,
  /(^|\.)(downsamplers|upsamplers)\.0\.conv\.weight$/,
  /(^|\.)attentions\.\d+\.(proj_in|proj_out)\.weight$/,
  /\.attn1\.(to_q|to_k|to_v|to_out\.0)\.weight$/,
  /\.attn2\.(to_q|to_out\.0)\.weight$/,
  /\.ff\.net\.(0\.proj|2)\.weight$/,
  /(^|\.)attentions\.\d+\.(to_q|to_k|to_v|to_out\.0)\.weight$/, // pixel self-attention (VAE mid block, UNet2DModel)
];

export function isQuantizedLayer(weightKey: string): boolean {
  return !/(^|\.)controlnet_/.test(weightKey) && QUANTIZED_LAYERS.some((r) => r.test(weightKey));
}

let cachedRange: number | undefined;
/**
 * Largest weight magnitude. Without VNNI/AMX, MLAS's u8 x s8 kernel (vpmaddubsw) adds pairs of products in
 * saturating 16-bit arithmetic: 255 * 127 * 2 overflows, 255 * 63 * 2 does not, so weights get 7 bits there
 * (onnxruntime's quantizer calls this reduce_range). VNNI and AMX accumulate in 32 bits: full 8 bits.
 */
export function weightRange(): number {
  cachedRange ??= weightRangeFor(cpuFlags());
  return cachedRange;
}

/** weightRange for a CPU with these flags (/proc/cpuinfo's names): 127 with avx512_vnni, avx_vnni or amx_int8, else 63. */
export function weightRangeFor(flags: string): 63 | 127 {
  return /(^|\s)(avx512_vnni|avx_vnni|amx_int8)(\s|$)/.test(flags) ? 127 : 63;
}

/** The first `flags` line of /proc/cpuinfo (or of `cpuinfo`), '' where there is none (not Linux: no VNNI assumed). */
export function cpuFlags(cpuinfo?: string): string {
  let text = cpuinfo;
  if (text === undefined) {
    try { text = fs.readFileSync('/proc/cpuinfo', 'utf8'); } catch { return ''; }
  }
  return text.match(/^flags\s*:(.*)$/m)?.[1]?.trim() ?? '';
}

/**
 * Tests and investigations: quantize weights to this range from now on (63: 7 bits, 127: 8 bits, which
 * saturates on CPUs without VNNI/AMX); undefined: the CPU's choice again. Sessions already built keep theirs.
 */
export function setWeightRange(range: 63 | 127 | undefined): void {
  cachedRange = range;
}

export interface QuantizedWeight {
  /** [K, N]: row k of the GEMM's right-hand side, column n = output channel. */
  readonly q: Int8Array;
  readonly scales: Float32Array;
}

/**
 * Symmetric per-output-channel quantization of a weight laid out [N, ...inner] (PyTorch's layout), written
 * transposed as the GEMM's [K, N] with K ordered by `kIndex(innerIndex)`.
 */
export function quantizePerChannel(w: Float32Array, n: number, range: number, kIndex: (i: number) => number = (i) => i): QuantizedWeight {
  const inner = w.length / n;
  const q = new Int8Array(w.length);
  const scales = new Float32Array(n);
  for (let o = 0; o < n; o++) {
    let max = 0;
    const base = o * inner;
    for (let i = 0; i < inner; i++) { const a = Math.abs(w[base + i]!); if (a > max) max = a; }
    const scale = max > 0 ? Math.fround(max / range) : 1;
    scales[o] = scale;
    const inv = 1 / scale;
    for (let i = 0; i < inner; i++) {
      const v = Math.round(w[base + i]! * inv);
      q[kIndex(i) * n + o] = v > range ? range : v < -range ? -range : v;
    }
  }
  return { q, scales };
}

function int8Const(g: Graph, qw: QuantizedWeight, k: number, n: number, hint: string): { b: Value; scale: Value } {
  return {
    b: g.constant({ dtype: 'int8', shape: [k, n], data: qw.q }, `${hint}_int8`),
    scale: g.constant({ dtype: 'float32', shape: [n], data: qw.scales }, `${hint}_scale`),
  };
}

function biasOf(g: Graph, vb: WeightsView, n: number, bias: boolean): Value | null {
  return bias ? g.constant({ dtype: 'float32', shape: [n], data: vb.get('bias', [n]).data }, 'bias') : null;
}

/** nn.Linear in int8 (DynamicQuantizeMatMul), or undefined when this graph or layer stays float32. */
export function int8Linear(x: Value, vb: WeightsView, inF: number, outF: number, bias: boolean): Value | undefined {
  const g = x.graph;
  if (!isInt8(g) || !isQuantizedLayer(vb.key('weight'))) return undefined;
  const w = vb.get('weight', [outF, inF]);
  const { b, scale } = int8Const(g, quantizePerChannel(w.data, outF, weightRange()), inF, outF, 'linear');
  const inputs = [x, b, scale, null, biasOf(g, vb, outF, bias)];
  return g.node('DynamicQuantizeMatMul', inputs[4] ? inputs : inputs.slice(0, 3), [{ shape: [...x.shape.slice(0, -1), outF], dtype: 'float32' }], {}, 'com.microsoft')[0]!;
}

type Pads = readonly [number, number, number, number];

/**
 * uint8 im2col of NHWC `xq` (zero point `zp`, so padding is the quantized 0.0): [N * OH * OW, taps * C]
 * with K ordered (dy, dx, c), the kernel taps as strided slices of the padded map concatenated on channels.
 */
function im2col(xq: Value, zp: Value, kernel: number, stride: number, pads: Pads, oh: number, ow: number): Value {
  const g = xq.graph;
  const [n, h, w, c] = xq.shape as [number, number, number, number];
  const i64 = (v: readonly number[]): Value => g.constant({ dtype: 'int64', shape: [v.length], data: BigInt64Array.from(v.map(BigInt)) }, 'i');
  const [pt, pl, pb, pr] = pads;
  const ph = h + pt + pb, pw = w + pl + pr;
  const padded = pt + pl + pb + pr === 0 ? xq : g.node('Pad', [xq, i64([0, pt, pl, 0, 0, pb, pr, 0]), zp], [{ shape: [n, ph, pw, c], dtype: 'uint8' }])[0]!;
  const taps: Value[] = [];
  for (let dy = 0; dy < kernel; dy++) {
    for (let dx = 0; dx < kernel; dx++) {
      const whole = dy === 0 && dx === 0 && stride === 1 && oh === ph && ow === pw;
      taps.push(whole ? padded : g.node('Slice', [padded, i64([dy, dx]), i64([dy + stride * (oh - 1) + 1, dx + stride * (ow - 1) + 1]), i64([1, 2]), i64([stride, stride])], [{ shape: [n, oh, ow, c], dtype: 'uint8' }])[0]!);
    }
  }
  return op.reshape(taps.length === 1 ? taps[0]! : g.node('Concat', taps, [{ shape: [n, oh, ow, taps.length * c], dtype: 'uint8' }], { axis: 3 })[0]!, [n * oh * ow, taps.length * c]);
}

/** The channel parts of `x` when it is a channel concatenation (the decoder's [h; skip]), else [x]. */
function channelParts(x: Value): Value[] {
  for (let i = x.graph.nodes.length - 1; i >= 0; i--) {
    const node = x.graph.nodes[i]!;
    if (node.outputs[0] !== x.name) continue;
    return node.op === 'Concat' && node.attrs.axis === 1 && node.inputValues.every((v) => v !== null) ? node.inputValues as Value[] : [x];
  }
  return [x];
}

/**
 * nn.Conv2d in int8, or undefined when this graph or layer stays float32 (or the conv is not a plain
 * 1x1/3x3 one). A channel concatenation is quantized per part (each its own activation scale): the
 * decoder's skip concatenation joins tensors of different magnitudes.
 */
export function int8Conv2d(x: Value, vb: WeightsView, inC: number, outC: number, kernel: number, opts: { stride?: number; padding?: number | Pads; bias?: boolean }): Value | undefined {
  const g = x.graph;
  if (!isInt8(g) || !isQuantizedLayer(vb.key('weight')) || (kernel !== 1 && kernel !== 3)) return undefined;
  const stride = opts.stride ?? 1;
  const p = opts.padding ?? 0;
  const pads: Pads = typeof p === 'number' ? [p, p, p, p] : p;
  const [n, , h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor((h + pads[0] + pads[2] - kernel) / stride) + 1;
  const ow = Math.floor((w + pads[1] + pads[3] - kernel) / stride) + 1;
  const weight = vb.get('weight', [outC, inC, kernel, kernel]).data;
  const taps = kernel * kernel;
  const range = weightRange();
  let bias = biasOf(g, vb, outC, opts.bias !== false);
  let y: Value | undefined;
  let c0 = 0;
  for (const part of channelParts(x)) {
    const c = part.dim(1);
    // This part's input channels [c0, c0 + c) of the weight, K ordered (dy, dx, c) as im2col lays it out.
    const sub = new Float32Array(outC * c * taps);
    for (let o = 0; o < outC; o++) sub.set(weight.subarray((o * inC + c0) * taps, (o * inC + c0 + c) * taps), o * c * taps);
    const qw = quantizePerChannel(sub, outC, range, (i) => (i % taps) * c + Math.floor(i / taps));
    const { b, scale } = int8Const(g, qw, taps * c, outC, 'conv');
    const [xq, xScale, xZp] = g.node('DynamicQuantizeLinear', [part], [{ shape: part.shape, dtype: 'uint8' }, { shape: [], dtype: 'float32' }, { shape: [], dtype: 'uint8' }]) as [Value, Value, Value];
    const cols = im2col(op.transpose(xq, [0, 2, 3, 1]), xZp, kernel, stride, pads, oh, ow);
    const inputs = [cols, b, xScale, scale, xZp, null, bias];
    const part_y = g.node('MatMulIntegerToFloat', bias ? inputs : inputs.slice(0, 5), [{ shape: [n * oh * ow, outC], dtype: 'float32' }], {}, 'com.microsoft')[0]!;
    y = y ? op.add(y, part_y) : part_y;
    bias = null;
    c0 += c;
  }
  return op.transpose(op.reshape(y!, [n, oh, ow, outC]), [0, 3, 1, 2]);
}
