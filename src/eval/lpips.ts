/**
 * LPIPS v0.1 with the AlexNet trunk (richzhang/PerceptualSimilarity, `lpips.LPIPS(net='alex')`):
 * ScalingLayer, torchvision AlexNet `features` cut after each ReLU (relu1..5), per-layer channel-unit
 * normalisation (eps 1e-10 on the norm), squared difference, the 1x1 `lin` heads (no bias), spatial
 * mean, sum over layers. Inputs are in [-1, 1] (uint8 / 127.5 - 1, as `lpips.im2tensor`).
 *
 * Weights: a folder holding the AlexNet trunk (`features.{0,3,6,8,10}.{weight,bias}`, torchvision's
 * state dict or a safetensors twin) and the official heads (`alex.pth` / a safetensors twin with
 * `lin{0..4}.model.1.weight`); any file format the weights-only reader opens.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { param } from '../graph/nn.js';
import { compile } from '../graph/session.js';
import type { RGBImage } from '../io/image.js';
import { openTensorSource } from '../io/tensor-file.js';
import { WeightsView, type TensorSource } from '../io/weights.js';
import type { Tensor } from '../tensor.js';

const SHIFT = [-0.030, -0.088, -0.188];
const SCALE = [0.458, 0.448, 0.450];
/** AlexNet conv layers: index in `features`, in/out channels, kernel, stride, padding; a max pool precedes conv 3 and 6. */
const ALEX = [[0, 3, 64, 11, 4, 2], [3, 64, 192, 5, 1, 2], [6, 192, 384, 3, 1, 1], [8, 384, 256, 3, 1, 1], [10, 256, 256, 3, 1, 1]] as const;

/** `lpips.im2tensor`: uint8 HWC -> [1, 3, H, W] in [-1, 1] (float64 arithmetic, then float32). */
export function lpipsInput(image: RGBImage): Tensor {
  const n = image.width * image.height, data = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) data[c * n + i] = image.data[i * 3 + c]! / 127.5 - 1;
  return { shape: [1, 3, image.height, image.width], data };
}

function maxPool(x: Value): Value {
  const [n, c, h, w] = x.shape as [number, number, number, number];
  const oh = Math.floor((h - 3) / 2) + 1, ow = Math.floor((w - 3) / 2) + 1;
  return x.graph.node('MaxPool', [x], [{ shape: [n, c, oh, ow], dtype: x.dtype }], { kernel_shape: [3, 3], strides: [2, 2] })[0]!;
}

/** The five relu outputs of AlexNet's features for x (already through the ScalingLayer). */
export function alexnetRelus(x: Value, trunk: WeightsView): Value[] {
  const g = x.graph, outs: Value[] = [];
  let h = x;
  for (const [idx, inC, outC, k, stride, pad] of ALEX) {
    if (idx === 3 || idx === 6) h = maxPool(h);
    const w = param(g, trunk.pp(`features.${idx}`), 'weight', [outC, inC, k, k]);
    const b = param(g, trunk.pp(`features.${idx}`), 'bias', [outC]);
    h = op.relu(op.conv2d(h, w, b, { stride, padding: pad }));
    outs.push(h);
  }
  return outs;
}

function scalingLayer(x: Value): Value {
  const g = x.graph;
  const shift = op.constFloat(g, [1, 3, 1, 1], Float32Array.from(SHIFT), 'lpips_shift');
  const scale = op.constFloat(g, [1, 3, 1, 1], Float32Array.from(SCALE), 'lpips_scale');
  return op.div(op.sub(x, shift), scale);
}

/** x / (sqrt(sum_c x^2) + 1e-10) (lpips.normalize_tensor). */
function normalizeTensor(x: Value): Value {
  return op.div(x, op.add(op.sqrt(op.reduceSum(op.mul(x, x), [1])), 1e-10));
}

/** Per-layer LPIPS terms [5] for in0 and in1 ([1, 3, H, W] each, in [-1, 1]). */
export function lpipsGraph(in0: Value, in1: Value, trunk: WeightsView, heads: WeightsView): Value {
  const f0 = alexnetRelus(scalingLayer(in0), trunk), f1 = alexnetRelus(scalingLayer(in1), trunk);
  const terms = f0.map((a, i) => {
    const c = a.dim(1);
    const d = op.mul(op.sub(normalizeTensor(a), normalizeTensor(f1[i]!)), op.sub(normalizeTensor(a), normalizeTensor(f1[i]!)));
    const w = param(in0.graph, heads.pp(`lin${i}.model.1`), 'weight', [1, c, 1, 1]);
    return op.reshape(op.reduceMean(op.conv2d(d, w, null), [0, 1, 2, 3]), [1]);
  });
  return op.concat(terms, 0);
}

/** The first file in `dir` (safetensors first) holding `key`. */
function findSource(dir: string, key: string, what: string): TensorSource {
  const files = fs.readdirSync(dir).filter((f) => /\.(safetensors|pth|pt|bin|ckpt)$/.test(f))
    .sort((a, b) => Number(!a.endsWith('.safetensors')) - Number(!b.endsWith('.safetensors')) || a.localeCompare(b));
  for (const f of files) {
    try {
      const src = openTensorSource(path.join(dir, f));
      if (src.has(key)) return src;
    } catch { /* not a weights file we read: try the next */ }
  }
  throw new FileFormatError(dir, `no weights file here holds the ${what}`, key);
}

export class LPIPS {
  constructor(readonly origin: string, readonly trunk: WeightsView, readonly heads: WeightsView) {}

  /** A folder with the AlexNet trunk and the lin heads (or two files given as `trunk,heads`). */
  static open(p: string): LPIPS {
    if (!fs.existsSync(p)) throw new FileFormatError(p, 'no such file or folder');
    if (!fs.statSync(p).isDirectory()) throw new InputError(`--model ${p}: LPIPS needs a folder holding the AlexNet features.* weights and the alex.pth heads`);
    const trunk = new WeightsView(findSource(p, 'features.0.weight', 'AlexNet trunk (torchvision alexnet features.*)'));
    const heads = new WeightsView(findSource(p, 'lin0.model.1.weight', 'LPIPS linear heads (alex.pth: lin0..4.model.1.weight)'));
    const m = new LPIPS(p, trunk, heads);
    for (const [idx, inC, outC, k] of ALEX) {
      const s = trunk.shape(`features.${idx}.weight`);
      if (s.join(',') !== [outC, inC, k, k].join(',')) throw new FileFormatError(trunk.source.origin, `weight has shape [${s.join(', ')}] but AlexNet expects [${outC}, ${inC}, ${k}, ${k}]`, `features.${idx}.weight`);
    }
    return m;
  }

  /** Per-layer terms and their sum for two images of one size. */
  async distance(a: RGBImage, b: RGBImage): Promise<{ lpips: number; layers: number[] }> {
    if (a.width !== b.width || a.height !== b.height) throw new InputError(`LPIPS compares images of one size: ${a.width}x${a.height} vs ${b.width}x${b.height}`);
    if (a.width < 63 || a.height < 63) throw new InputError(`LPIPS (AlexNet) needs images of at least 63x63, got ${a.width}x${a.height}`);
    const shape = [1, 3, a.height, a.width];
    const session = await compile(`lpips-alex:${path.resolve(this.origin)}:${shape.join('x')}`, () => {
      const g = new Graph('lpips');
      g.output('layers', lpipsGraph(g.input('in0', shape), g.input('in1', shape), this.trunk, this.heads));
      return g;
    });
    const r = await session.run({ in0: lpipsInput(a), in1: lpipsInput(b) });
    const layers = [...r.layers!.data];
    // lpips sums the float32 per-layer values in order.
    let total = 0;
    for (const v of layers) total = Math.fround(total + v);
    return { lpips: total, layers };
  }
}
