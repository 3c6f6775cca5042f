/**
 * DINO ViT features for the DINO score and the DINO-G / DINO-C structure distance (InDetail-IP's
 * tables): transformers' `ViTModel` (no pooler) or the official DINO `VisionTransformer` state dict
 * (`blocks.i.attn.qkv`, read weights-only), fed with DINO's eval transform.
 *
 * - DINO score: cosine of the CLS tokens of last_hidden_state (after the final LayerNorm).
 * - Structure distance (Splice, Tumanyan et al. 2022): keys of the LAST block's self-attention for all
 *   tokens (heads concatenated), cosine self-similarity S (norm product clamped at 1e-8), and
 *   mean((S_a - S_b)^2) over the T x T entries.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { attentionCore, gelu, mergeHeads, param, splitHeads } from '../graph/nn.js';
import { compile } from '../graph/session.js';
import { Config } from '../io/config.js';
import type { RGBImage } from '../io/image.js';
import { pilResize } from '../io/pil-resize.js';
import { shortestEdgeSize } from '../io/clip-image-processor.js';
import { openTensorSource } from '../io/tensor-file.js';
import { openComponentWeights, WeightsView, type TensorSource } from '../io/weights.js';
import type { Tensor } from '../tensor.js';

export interface ViTConfig {
  readonly hiddenSize: number;
  readonly numHiddenLayers: number;
  readonly numAttentionHeads: number;
  readonly intermediateSize: number;
  readonly patchSize: number;
  readonly imageSize: number;
  readonly numChannels: number;
  readonly layerNormEps: number;
}

/** Which key layout the weights use. */
type Layout = 'transformers' | 'dino';

export const IMAGENET_MEAN = [0.485, 0.456, 0.406] as const;
export const IMAGENET_STD = [0.229, 0.224, 0.225] as const;

/** Python's round(): half to even. */
function roundHalfEven(x: number): number {
  const f = Math.floor(x), d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

/**
 * DINO's eval transform (torchvision 0.14 on PIL): Resize(resize, bicubic) of the shortest edge,
 * CenterCrop(crop) with offsets int(round((h - crop) / 2)), ToTensor (/255), Normalize(ImageNet).
 * Returns [3, crop, crop] float32 and the cropped uint8 image.
 */
export function dinoEvalTransform(image: RGBImage, resize = 256, crop = 224): { pixelValues: Float32Array; cropped: RGBImage } {
  const [h, w] = shortestEdgeSize(image.height, image.width, resize);
  const resized = pilResize(image, w, h, 'bicubic');
  if (h < crop || w < crop) throw new InputError(`DINO eval transform: ${w}x${h} after the resize is smaller than the ${crop} crop`);
  const top = roundHalfEven((h - crop) / 2), left = roundHalfEven((w - crop) / 2);
  const data = new Uint8Array(crop * crop * 3);
  for (let y = 0; y < crop; y++) {
    const s = ((y + top) * w + left) * 3;
    data.set(resized.data.subarray(s, s + crop * 3), y * crop * 3);
  }
  const n = crop * crop, px = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) {
    const m = Math.fround(IMAGENET_MEAN[c]!), sd = Math.fround(IMAGENET_STD[c]!);
    for (let i = 0; i < n; i++) px[c * n + i] = Math.fround(Math.fround(data[i * 3 + c]! / 255) - m) / sd;
  }
  return { pixelValues: px, cropped: { width: crop, height: crop, data } };
}

function layerNormAt(x: Value, vb: WeightsView, d: number, eps: number): Value {
  return op.layerNormalization(x, param(x.graph, vb, 'weight', [d]), param(x.graph, vb, 'bias', [d]), eps);
}

function linearAt(x: Value, vb: WeightsView, inF: number, outF: number, rows?: [number, number]): Value {
  const g = x.graph;
  let w = param(g, vb, 'weight', [rows ? null : outF, inF]);
  let b = param(g, vb, 'bias', [rows ? null : outF]);
  if (rows) { w = op.slice(w, 0, rows[0], rows[1]); b = op.slice(b, 0, rows[0], rows[1]); }
  return op.add(op.matmul(x, op.transpose(w, [1, 0])), b);
}

export interface ViTOutputs {
  /** [B, D]: CLS token of last_hidden_state. */
  readonly cls: Value;
  /** [B, T, D]: key projections of the last block (heads concatenated). */
  readonly lastKeys: Value;
}

/** ViT forward on pixel_values [B, C, S, S]. */
export function vitGraph(pixel: Value, vb: WeightsView, cfg: ViTConfig, layout: Layout): ViTOutputs {
  const g = pixel.graph;
  const d = cfg.hiddenSize, b = pixel.dim(0), grid = cfg.imageSize / cfg.patchSize, t = grid * grid + 1;
  const names = layout === 'transformers'
    ? { patch: 'embeddings.patch_embeddings.projection', cls: 'embeddings.cls_token', pos: 'embeddings.position_embeddings', layers: 'encoder.layer', norm: 'layernorm' }
    : { patch: 'patch_embed.proj', cls: 'cls_token', pos: 'pos_embed', layers: 'blocks', norm: 'norm' };
  const pw = param(g, vb.pp(names.patch), 'weight', [d, cfg.numChannels, cfg.patchSize, cfg.patchSize]);
  const pb = param(g, vb.pp(names.patch), 'bias', [d]);
  const patches = op.conv2d(pixel, pw, pb, { stride: cfg.patchSize });
  const tokens = op.transpose(op.reshape(patches, [b, d, grid * grid]), [0, 2, 1]);
  const cls = op.reshape(param(g, vb, names.cls, [1, 1, d]), [1, 1, d]);
  let x = op.concat([op.concat(Array<Value>(b).fill(cls), 0), tokens], 1);
  x = op.add(x, param(g, vb, names.pos, [1, t, d]));
  const heads = cfg.numAttentionHeads, scale = (d / heads) ** -0.5;
  let lastKeys: Value | undefined;
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const lv = vb.pp(names.layers).pp(i);
    const tr = layout === 'transformers';
    const h = layerNormAt(x, lv.pp(tr ? 'layernorm_before' : 'norm1'), d, cfg.layerNormEps);
    const q = tr ? linearAt(h, lv.pp('attention.attention.query'), d, d) : linearAt(h, lv.pp('attn.qkv'), d, 3 * d, [0, d]);
    const k = tr ? linearAt(h, lv.pp('attention.attention.key'), d, d) : linearAt(h, lv.pp('attn.qkv'), d, 3 * d, [d, 2 * d]);
    const v = tr ? linearAt(h, lv.pp('attention.attention.value'), d, d) : linearAt(h, lv.pp('attn.qkv'), d, 3 * d, [2 * d, 3 * d]);
    if (i === cfg.numHiddenLayers - 1) lastKeys = k;
    const attn = mergeHeads(attentionCore(splitHeads(q, heads), splitHeads(k, heads), splitHeads(v, heads), scale));
    x = op.add(x, linearAt(attn, lv.pp(tr ? 'attention.output.dense' : 'attn.proj'), d, d));
    const m = layerNormAt(x, lv.pp(tr ? 'layernorm_after' : 'norm2'), d, cfg.layerNormEps);
    const mlp = linearAt(gelu(linearAt(m, lv.pp(tr ? 'intermediate.dense' : 'mlp.fc1'), d, cfg.intermediateSize)), lv.pp(tr ? 'output.dense' : 'mlp.fc2'), cfg.intermediateSize, d);
    x = op.add(x, mlp);
  }
  const last = layerNormAt(x, vb.pp(names.norm), d, cfg.layerNormEps);
  return { cls: op.reshape(op.slice(last, 1, 0, 1), [b, d]), lastKeys: lastKeys! };
}

/** Cosine self-similarity of token rows [T, D] (Splice's attn_cosine_sim, eps 1e-8), float64. */
export function keysSelfSimilarity(keys: Float32Array, t: number, d: number): Float64Array {
  const norms = new Float64Array(t);
  for (let i = 0; i < t; i++) { let s = 0; for (let k = 0; k < d; k++) s += keys[i * d + k]! ** 2; norms[i] = Math.sqrt(s); }
  const out = new Float64Array(t * t);
  for (let i = 0; i < t; i++) {
    for (let j = i; j < t; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += keys[i * d + k]! * keys[j * d + k]!;
      out[i * t + j] = out[j * t + i] = s / Math.max(norms[i]! * norms[j]!, 1e-8);
    }
  }
  return out;
}

/** F.mse_loss of two self-similarity matrices. */
export function structureDistance(a: Float64Array, b: Float64Array): number {
  if (a.length !== b.length) throw new InputError(`structure distance: self-similarity sizes differ (${a.length} vs ${b.length})`);
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i]! - b[i]!) ** 2;
  return s / a.length;
}

export interface DinoFeatures {
  /** [D] CLS feature. */
  readonly cls: Float32Array;
  /** [T, D] last-layer keys. */
  readonly keys: Float32Array;
}

function vitConfigFrom(c: Config): ViTConfig {
  return {
    hiddenSize: c.int('hidden_size', 768), numHiddenLayers: c.int('num_hidden_layers', 12), numAttentionHeads: c.int('num_attention_heads', 12),
    intermediateSize: c.int('intermediate_size', 3072), patchSize: c.int('patch_size', 16), imageSize: c.int('image_size', 224),
    numChannels: c.int('num_channels', 3), layerNormEps: c.number('layer_norm_eps', 1e-12),
  };
}

/** The DINO config of an official state dict, read from its shapes (LayerNorm eps 1e-6, as DINO's ViT). */
function vitConfigFromDino(src: TensorSource): ViTConfig {
  const pw = src.shape('patch_embed.proj.weight');
  const pos = src.shape('pos_embed');
  const fc1 = src.shape('blocks.0.mlp.fc1.weight');
  let layers = 0;
  while (src.has(`blocks.${layers}.attn.qkv.weight`)) layers++;
  const d = pw[0]!, p = pw[2]!, grid = Math.round(Math.sqrt(pos[1]! - 1));
  // Head count is not stored; DINO's ViTs use 64-dim heads (ViT-S 6, ViT-B 12).
  return { hiddenSize: d, numHiddenLayers: layers, numAttentionHeads: Math.max(1, d / 64), intermediateSize: fc1[0]!, patchSize: p, imageSize: grid * p, numChannels: pw[1]!, layerNormEps: 1e-6 };
}

export class DinoViT {
  constructor(readonly origin: string, readonly config: ViTConfig, readonly weights: WeightsView, readonly layout: Layout) {}

  /**
   * A transformers ViTModel folder (config.json + model.safetensors), or an official DINO checkpoint
   * (`dino_vitbase16_pretrain.pth` etc.: a file, or a folder holding one; `--heads` sets the head count
   * when it is not 64-dim).
   */
  static open(p: string, heads?: number): DinoViT {
    const isDir = fs.existsSync(p) && fs.statSync(p).isDirectory();
    if (!fs.existsSync(p)) throw new FileFormatError(p, 'no such file or folder');
    if (isDir && fs.existsSync(path.join(p, 'config.json'))) {
      const cfg = vitConfigFrom(Config.read(path.join(p, 'config.json')));
      const src = openComponentWeights(p);
      const vb = new WeightsView(src, src.has('vit.embeddings.cls_token') ? 'vit' : '');
      const model = new DinoViT(p, heads ? { ...cfg, numAttentionHeads: heads } : cfg, vb, 'transformers');
      model.check();
      return model;
    }
    const file = isDir ? fs.readdirSync(p).filter((f) => /\.(pth|pt|bin|safetensors)$/.test(f)).map((f) => path.join(p, f))[0] : p;
    if (!file) throw new FileFormatError(p, 'no config.json (transformers ViTModel) and no .pth/.safetensors DINO checkpoint in this folder');
    const src = openTensorSource(file, (k) => k.replace(/^(module\.|backbone\.|teacher\.|student\.)+/, ''));
    const layout: Layout = src.has('embeddings.cls_token') ? 'transformers' : 'dino';
    if (layout === 'transformers') throw new FileFormatError(file, 'a transformers ViTModel needs its config.json: pass the folder');
    if (!src.has('patch_embed.proj.weight')) throw new FileFormatError(file, 'not a ViT (expected a DINO VisionTransformer state dict)', 'patch_embed.proj.weight');
    const cfg = vitConfigFromDino(src);
    const model = new DinoViT(file, heads ? { ...cfg, numAttentionHeads: heads } : cfg, new WeightsView(src), layout);
    model.check();
    return model;
  }

  /** Shapes of the main weights against the config (names the key and both shapes). */
  private check(): void {
    const c = this.config, d = c.hiddenSize;
    if (d % c.numAttentionHeads !== 0) throw new FileFormatError(this.origin, `hidden size ${d} is not divisible by ${c.numAttentionHeads} heads`);
    const tr = this.layout === 'transformers';
    const checks: [string, number[]][] = tr
      ? [['embeddings.patch_embeddings.projection.weight', [d, c.numChannels, c.patchSize, c.patchSize]], ['embeddings.position_embeddings', [1, (c.imageSize / c.patchSize) ** 2 + 1, d]],
        [`encoder.layer.${c.numHiddenLayers - 1}.intermediate.dense.weight`, [c.intermediateSize, d]]]
      : [['pos_embed', [1, (c.imageSize / c.patchSize) ** 2 + 1, d]], [`blocks.${c.numHiddenLayers - 1}.attn.qkv.weight`, [3 * d, d]]];
    for (const [key, want] of checks) {
      if (!this.weights.has(key)) throw new FileFormatError(this.weights.source.origin, `missing weight (expected shape [${want.join(', ')}]); not a ViT of this config`, this.weights.key(key));
      const s = this.weights.shape(key);
      if (s.length !== want.length || s.some((x, i) => x !== want[i])) throw new FileFormatError(this.weights.source.origin, `weight has shape [${s.join(', ')}] but the config expects [${want.join(', ')}]`, this.weights.key(key));
    }
  }

  /** CLS features and last-layer keys of ready pixel values [B, 3, S, S]. */
  async run(pixelValues: Tensor): Promise<DinoFeatures[]> {
    const c = this.config, b = pixelValues.shape[0]!;
    const session = await compile(`dino-vit:${path.resolve(this.origin)}:${c.numAttentionHeads}:${pixelValues.shape.join('x')}`, () => {
      const g = new Graph('dino_vit');
      const out = vitGraph(g.input('pixel_values', pixelValues.shape), this.weights, c, this.layout);
      g.output('cls', out.cls);
      g.output('keys', out.lastKeys);
      return g;
    });
    const r = await session.run({ pixel_values: pixelValues });
    const d = c.hiddenSize, t = (c.imageSize / c.patchSize) ** 2 + 1;
    return Array.from({ length: b }, (_, i) => ({
      cls: r.cls!.data.slice(i * d, (i + 1) * d),
      keys: r.keys!.data.slice(i * t * d, (i + 1) * t * d),
    }));
  }

  /** Features of images through DINO's eval transform (Resize 256 / CenterCrop 224 for a 224 model). */
  async features(images: readonly RGBImage[]): Promise<DinoFeatures[]> {
    const s = this.config.imageSize;
    const resize = Math.round((s * 256) / 224);
    const per = 3 * s * s;
    const data = new Float32Array(images.length * per);
    images.forEach((im, i) => data.set(dinoEvalTransform(im, resize, s).pixelValues, i * per));
    return this.run({ shape: [images.length, 3, s, s], data });
  }

  get tokens(): number { return (this.config.imageSize / this.config.patchSize) ** 2 + 1; }
}

/** cos(a, b) (normalise then dot, as F.normalize / torch.cosine_similarity), float64. */
export function cosine(a: Float32Array, b: Float32Array): number {
  let ab = 0, aa = 0, bb = 0;
  for (let i = 0; i < a.length; i++) { ab += a[i]! * b[i]!; aa += a[i]! ** 2; bb += b[i]! ** 2; }
  return ab / (Math.max(Math.sqrt(aa), 1e-12) * Math.max(Math.sqrt(bb), 1e-12));
}
