/**
 * pytorch-fid's InceptionV3 (`InceptionV3([3])`, built by its `fid_inception_v3()`: torchvision's
 * Inception v3 with the FIDInceptionA/C/E_1/E_2 blocks of the TF FID graph) up to the 2048-d pool3
 * features, with pytorch-fid's own input handling: ToTensor (/255), bilinear resize to 299x299
 * (align_corners False, no antialias, also when shrinking), 2x - 1.
 *
 * Weights: `pt_inception-2015-12-05-6726825d.pth` (read weights-only) or a safetensors twin, key
 * layout `Conv2d_1a_3x3.conv.weight`, `Mixed_5b.branch1x1.bn.running_mean`, ...
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError } from '../errors.js';
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { param } from '../graph/nn.js';
import { compile } from '../graph/session.js';
import type { RGBImage } from '../io/image.js';
import { openTensorSource } from '../io/tensor-file.js';
import { WeightsView } from '../io/weights.js';
import type { Tensor } from '../tensor.js';

export const FID_INPUT_SIZE = 299;
export const FID_DIMS = 2048;

type Pad = [number, number];

/** BasicConv2d: conv (no bias) + BatchNorm (eps 0.001) + ReLU; the output channels come from the weights. */
function basicConv(x: Value, vb: WeightsView, k: Pad, opts: { stride?: number; pad?: Pad } = {}): Value {
  const g = x.graph;
  const key = vb.pp('conv').key('weight');
  if (!vb.pp('conv').has('weight')) throw new FileFormatError(vb.source.origin, 'missing weight: not the pytorch-fid InceptionV3 layout', key);
  const s = vb.pp('conv').shape('weight');
  const inC = x.dim(1);
  if (s.length !== 4 || s[1] !== inC || s[2] !== k[0] || s[3] !== k[1]) {
    throw new FileFormatError(vb.source.origin, `weight has shape [${s.join(', ')}] but the FID InceptionV3 expects [?, ${inC}, ${k[0]}, ${k[1]}]`, key);
  }
  const outC = s[0]!;
  const w = param(g, vb.pp('conv'), 'weight', [outC, inC, k[0], k[1]]);
  const [ph, pw] = opts.pad ?? [0, 0];
  const y = op.conv2d(x, w, null, { stride: opts.stride ?? 1, padding: [ph, pw, ph, pw] });
  const bn = vb.pp('bn');
  const [out] = g.node('BatchNormalization', [y, param(g, bn, 'weight', [outC]), param(g, bn, 'bias', [outC]), param(g, bn, 'running_mean', [outC]), param(g, bn, 'running_var', [outC])],
    [{ shape: y.shape, dtype: y.dtype }], { epsilon: { float: 0.001 } });
  return op.relu(out!);
}

function pool(x: Value, kind: 'MaxPool' | 'AveragePool', stride: number, pad: number): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor((h + 2 * pad - 3) / stride) + 1, ow = Math.floor((w + 2 * pad - 3) / stride) + 1;
  const attrs: Record<string, number | number[]> = { kernel_shape: [3, 3], strides: [stride, stride], pads: [pad, pad, pad, pad] };
  if (kind === 'AveragePool') attrs['count_include_pad'] = 0;
  return x.graph.node(kind, [x], [{ shape: [n, c, oh, ow], dtype: x.dtype }], attrs)[0]!;
}

const c1: Pad = [1, 1], c3: Pad = [3, 3], c5: Pad = [5, 5], r7: Pad = [1, 7], c7: Pad = [7, 1], r3: Pad = [1, 3], c31: Pad = [3, 1];

function inceptionA(x: Value, vb: WeightsView): Value {
  const b1 = basicConv(x, vb.pp('branch1x1'), c1);
  const b5 = basicConv(basicConv(x, vb.pp('branch5x5_1'), c1), vb.pp('branch5x5_2'), c5, { pad: [2, 2] });
  let bd = basicConv(x, vb.pp('branch3x3dbl_1'), c1);
  bd = basicConv(basicConv(bd, vb.pp('branch3x3dbl_2'), c3, { pad: [1, 1] }), vb.pp('branch3x3dbl_3'), c3, { pad: [1, 1] });
  const bp = basicConv(pool(x, 'AveragePool', 1, 1), vb.pp('branch_pool'), c1);
  return op.concat([b1, b5, bd, bp], 1);
}

function inceptionB(x: Value, vb: WeightsView): Value {
  const b3 = basicConv(x, vb.pp('branch3x3'), c3, { stride: 2 });
  let bd = basicConv(x, vb.pp('branch3x3dbl_1'), c1);
  bd = basicConv(basicConv(bd, vb.pp('branch3x3dbl_2'), c3, { pad: [1, 1] }), vb.pp('branch3x3dbl_3'), c3, { stride: 2 });
  return op.concat([b3, bd, pool(x, 'MaxPool', 2, 0)], 1);
}

function inceptionC(x: Value, vb: WeightsView): Value {
  const b1 = basicConv(x, vb.pp('branch1x1'), c1);
  let b7 = basicConv(x, vb.pp('branch7x7_1'), c1);
  b7 = basicConv(basicConv(b7, vb.pp('branch7x7_2'), r7, { pad: [0, 3] }), vb.pp('branch7x7_3'), c7, { pad: [3, 0] });
  let bd = basicConv(x, vb.pp('branch7x7dbl_1'), c1);
  bd = basicConv(bd, vb.pp('branch7x7dbl_2'), c7, { pad: [3, 0] });
  bd = basicConv(bd, vb.pp('branch7x7dbl_3'), r7, { pad: [0, 3] });
  bd = basicConv(bd, vb.pp('branch7x7dbl_4'), c7, { pad: [3, 0] });
  bd = basicConv(bd, vb.pp('branch7x7dbl_5'), r7, { pad: [0, 3] });
  const bp = basicConv(pool(x, 'AveragePool', 1, 1), vb.pp('branch_pool'), c1);
  return op.concat([b1, b7, bd, bp], 1);
}

function inceptionD(x: Value, vb: WeightsView): Value {
  const b3 = basicConv(basicConv(x, vb.pp('branch3x3_1'), c1), vb.pp('branch3x3_2'), c3, { stride: 2 });
  let b7 = basicConv(x, vb.pp('branch7x7x3_1'), c1);
  b7 = basicConv(b7, vb.pp('branch7x7x3_2'), r7, { pad: [0, 3] });
  b7 = basicConv(b7, vb.pp('branch7x7x3_3'), c7, { pad: [3, 0] });
  b7 = basicConv(b7, vb.pp('branch7x7x3_4'), c3, { stride: 2 });
  return op.concat([b3, b7, pool(x, 'MaxPool', 2, 0)], 1);
}

/** FIDInceptionE_1 (average pool without the padded zeros) or E_2 (max pool), as the TF FID graph. */
function inceptionE(x: Value, vb: WeightsView, poolKind: 'AveragePool' | 'MaxPool'): Value {
  const b1 = basicConv(x, vb.pp('branch1x1'), c1);
  const b3 = basicConv(x, vb.pp('branch3x3_1'), c1);
  const b3s = op.concat([basicConv(b3, vb.pp('branch3x3_2a'), r3, { pad: [0, 1] }), basicConv(b3, vb.pp('branch3x3_2b'), c31, { pad: [1, 0] })], 1);
  const bd = basicConv(basicConv(x, vb.pp('branch3x3dbl_1'), c1), vb.pp('branch3x3dbl_2'), c3, { pad: [1, 1] });
  const bds = op.concat([basicConv(bd, vb.pp('branch3x3dbl_3a'), r3, { pad: [0, 1] }), basicConv(bd, vb.pp('branch3x3dbl_3b'), c31, { pad: [1, 0] })], 1);
  const bp = basicConv(pool(x, poolKind, 1, 1), vb.pp('branch_pool'), c1);
  return op.concat([b1, b3s, bds, bp], 1);
}

export interface InceptionOutputs {
  /** [B, 2048] pool3 features. */
  readonly pool3: Value;
  /** Block outputs 0..3 (for fingerprints): per-channel spatial means [B, C]. */
  readonly blockMeans: Value[];
}

/** The network on x [B, 3, 299, 299] in [0, 1] (already resized): 2x - 1, blocks 0..3, global average pool. */
export function fidInceptionGraph(x: Value, vb: WeightsView): InceptionOutputs {
  let h = op.sub(op.mul(x, 2), 1);
  const means: Value[] = [];
  const mean = (v: Value): Value => op.reduceMean(v, [2, 3], false);
  // block 0
  h = basicConv(h, vb.pp('Conv2d_1a_3x3'), c3, { stride: 2 });
  h = basicConv(h, vb.pp('Conv2d_2a_3x3'), c3);
  h = basicConv(h, vb.pp('Conv2d_2b_3x3'), c3, { pad: [1, 1] });
  h = pool(h, 'MaxPool', 2, 0);
  means.push(mean(h));
  // block 1
  h = basicConv(h, vb.pp('Conv2d_3b_1x1'), c1);
  h = basicConv(h, vb.pp('Conv2d_4a_3x3'), c3);
  h = pool(h, 'MaxPool', 2, 0);
  means.push(mean(h));
  // block 2
  for (const m of ['Mixed_5b', 'Mixed_5c', 'Mixed_5d']) h = inceptionA(h, vb.pp(m));
  h = inceptionB(h, vb.pp('Mixed_6a'));
  for (const m of ['Mixed_6b', 'Mixed_6c', 'Mixed_6d', 'Mixed_6e']) h = inceptionC(h, vb.pp(m));
  means.push(mean(h));
  // block 3
  h = inceptionD(h, vb.pp('Mixed_7a'));
  h = inceptionE(h, vb.pp('Mixed_7b'), 'AveragePool');
  h = inceptionE(h, vb.pp('Mixed_7c'), 'MaxPool');
  const pool3 = mean(h);
  means.push(pool3);
  return { pool3, blockMeans: means };
}

/**
 * ToTensor + F.interpolate(size=(299, 299), mode='bilinear', align_corners=False) of one image, as
 * torch's CPU kernel computes it in float32: source index (dst + 0.5) * in/out - 0.5 clamped at 0,
 * weights (1 - l, l), rows of the two source lines blended after the columns.
 */
export function fidResize(image: RGBImage, size = FID_INPUT_SIZE): Float32Array {
  const { width: w, height: h } = image;
  const idx = (inSize: number): { i0: Int32Array; i1: Int32Array; l0: Float32Array; l1: Float32Array } => {
    const i0 = new Int32Array(size), i1 = new Int32Array(size), l0 = new Float32Array(size), l1 = new Float32Array(size);
    const scale = Math.fround(inSize / size);
    for (let o = 0; o < size; o++) {
      const src = Math.max(Math.fround(Math.fround(scale * Math.fround(o + 0.5)) - 0.5), 0);
      const i = Math.floor(src);
      i0[o] = i; i1[o] = i + (i < inSize - 1 ? 1 : 0);
      const lam = Math.min(Math.max(Math.fround(src - i), 0), 1);
      l1[o] = lam; l0[o] = Math.fround(1 - lam);
    }
    return { i0, i1, l0, l1 };
  };
  const ry = idx(h), rx = idx(w);
  const out = new Float32Array(3 * size * size);
  const f = (y: number, x: number, c: number): number => Math.fround(image.data[(y * w + x) * 3 + c]! / 255);
  for (let c = 0; c < 3; c++) {
    for (let oy = 0; oy < size; oy++) {
      const y0 = ry.i0[oy]!, y1 = ry.i1[oy]!, h0 = ry.l0[oy]!, h1 = ry.l1[oy]!;
      for (let ox = 0; ox < size; ox++) {
        const x0 = rx.i0[ox]!, x1 = rx.i1[ox]!, w0 = rx.l0[ox]!, w1 = rx.l1[ox]!;
        const top = Math.fround(Math.fround(w0 * f(y0, x0, c)) + Math.fround(w1 * f(y0, x1, c)));
        const bot = Math.fround(Math.fround(w0 * f(y1, x0, c)) + Math.fround(w1 * f(y1, x1, c)));
        out[(c * size + oy) * size + ox] = Math.fround(Math.fround(h0 * top) + Math.fround(h1 * bot));
      }
    }
  }
  return out;
}

/** A weights file, or a folder holding one `.pth` / `.safetensors` with `Conv2d_1a_3x3.conv.weight`. */
export function resolveInceptionWeights(p: string): string {
  if (!fs.existsSync(p)) throw new FileFormatError(p, 'no such file or folder');
  if (!fs.statSync(p).isDirectory()) return p;
  const files = fs.readdirSync(p).filter((f) => /\.(safetensors|pth|pt|bin)$/.test(f)).sort((a, b) => Number(!a.endsWith('.safetensors')) - Number(!b.endsWith('.safetensors')) || a.localeCompare(b));
  if (files.length === 0) throw new FileFormatError(p, 'no .pth or .safetensors file here (expected pt_inception-2015-12-05-6726825d.pth)');
  return path.join(p, files[0]!);
}

export class FIDInception {
  constructor(readonly file: string, readonly weights: WeightsView) {}

  static open(p: string): FIDInception {
    const file = resolveInceptionWeights(p);
    const src = openTensorSource(file);
    if (!src.has('Conv2d_1a_3x3.conv.weight')) throw new FileFormatError(file, 'missing weight: not the pytorch-fid InceptionV3 (pt_inception-2015-12-05) layout', 'Conv2d_1a_3x3.conv.weight');
    const fc = src.has('Mixed_7c.branch_pool.conv.weight') ? src.shape('Mixed_7c.branch_pool.conv.weight') : undefined;
    if (!fc) throw new FileFormatError(file, 'missing weight: not the pytorch-fid InceptionV3 layout', 'Mixed_7c.branch_pool.conv.weight');
    return new FIDInception(file, new WeightsView(src));
  }

  /** pool3 features [B, 2048] of images resized by `fidResize` ([B, 3, 299, 299] in [0, 1]). */
  async run(x: Tensor): Promise<{ pool3: Tensor; blockMeans: Tensor[] }> {
    const session = await compile(`fid-inception:${path.resolve(this.file)}:${x.shape.join('x')}`, () => {
      const g = new Graph('fid_inception');
      const out = fidInceptionGraph(g.input('x', x.shape), this.weights);
      g.output('pool3', out.pool3);
      out.blockMeans.slice(0, 3).forEach((m, i) => g.output(`block${i}`, m));
      return g;
    });
    const r = await session.run({ x });
    return { pool3: r.pool3!, blockMeans: [r.block0!, r.block1!, r.block2!, r.pool3!] };
  }

  /** pool3 features of images, `batch` at a time (the last batch padded with zeros to the same graph). */
  async features(images: readonly RGBImage[], batch = 50): Promise<Float32Array[]> {
    const per = 3 * FID_INPUT_SIZE * FID_INPUT_SIZE;
    const b = Math.max(1, Math.min(batch, images.length));
    const out: Float32Array[] = [];
    for (let s = 0; s < images.length; s += b) {
      const data = new Float32Array(b * per);
      const part = images.slice(s, s + b);
      part.forEach((im, i) => data.set(fidResize(im), i * per));
      const r = await this.run({ shape: [b, 3, FID_INPUT_SIZE, FID_INPUT_SIZE], data });
      const d = r.pool3.shape[1]!;
      for (let i = 0; i < part.length; i++) out.push(r.pool3.data.slice(i * d, (i + 1) * d));
    }
    return out;
  }
}
