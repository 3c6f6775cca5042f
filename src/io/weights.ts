/**
 * A view of a checkpoint's tensors addressed by diffusers path prefix, the way candle's VarBuilder
 * works: `vb.pp('down_blocks').pp(0).get('conv1.weight', [c, c, 3, 3])`. Key strings live in the
 * model files only once; a missing or mis-shaped key is reported with the file, key and shapes.
 * Tensors are read from disk on first use and kept, so each weight is loaded once per process.
 */
import path from 'node:path';
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { SafetensorsFile } from './safetensors.js';
import { f32Mirror } from './f32-mirror.js';
import { openShardedTensorFiles, openTensorSource, readShardIndex } from './tensor-file.js';
import type { FileSpan } from '../graph/ir.js';

const EMPTY = new Float32Array(0);

/** Where each tensor of a component lives, and what it is called there. */
export interface TensorSource {
  /** A description for messages (the folder or file). */
  readonly origin: string;
  keys(): Iterable<string>;
  has(key: string): boolean;
  shape(key: string): readonly number[];
  read(key: string): Tensor;
  /** Where the tensor's float32 bytes lie on disk as stored (F32 and untransformed), if they do. */
  location?(key: string): { path: string; offset: number } | undefined;
  /** Set when the contents differ from the files' (merged LoRAs): names what was applied, for graph caches. */
  readonly fingerprint?: string;
  /**
   * For a tensor that `read` returns with low-rank terms added (merged LoRAs): the untransformed source
   * and the terms, so a graph can reference the stored tensor and add `factor * (up @ down)` itself.
   */
  lowRankTerms?(key: string): { readonly base: TensorSource; readonly terms: readonly LowRankTerm[] } | undefined;
}

/** factor * (up @ down), reshaped to the weight's shape: up [out, r], down [r, numel / out]. */
export interface LowRankTerm {
  readonly up: Tensor;
  readonly down: Tensor;
  readonly factor: number;
}

/**
 * One or more safetensors files (sharded checkpoints), optionally with a key renaming. Tensors are
 * read on every request and not kept: ONNX Runtime copies initializers into each session it builds,
 * so a JavaScript copy kept here would only double the memory of a 3.4 GB UNet.
 */
export class SafetensorsSource implements TensorSource {
  private readonly byKey = new Map<string, { file: SafetensorsFile; stored: string }>();

  constructor(readonly origin: string, files: readonly SafetensorsFile[], rename?: (stored: string) => string | undefined) {
    for (const file of files) {
      for (const stored of file.tensors.keys()) {
        const key = rename ? rename(stored) : stored;
        if (key !== undefined) this.byKey.set(key, { file, stored });
      }
    }
  }

  keys(): Iterable<string> { return this.byKey.keys(); }
  has(key: string): boolean { return this.byKey.has(key); }
  shape(key: string): readonly number[] { return this.entry(key).file.info(this.entry(key).stored).shape; }

  read(key: string): Tensor {
    const { file, stored } = this.entry(key);
    return file.readFloat32(stored);
  }

  location(key: string): { path: string; offset: number } | undefined {
    const { file, stored } = this.entry(key);
    const info = file.info(stored);
    if (info.dtype === 'F32') return { path: file.path, offset: info.offset };
    if (info.dtype !== 'F16' && info.dtype !== 'BF16' && info.dtype !== 'F64') return undefined; // integers: read as they are
    const mirror = f32Mirror(file);
    return mirror?.has(stored) ? { path: mirror.path, offset: mirror.info(stored).offset } : undefined;
  }

  private entry(key: string): { file: SafetensorsFile; stored: string } {
    const e = this.byKey.get(key);
    if (!e) throw new FileFormatError(this.origin, 'missing weight', key);
    return e;
  }
}

export class WeightsView {
  constructor(readonly source: TensorSource, readonly prefix = '') {}

  /** A view one level down: `pp('to_q')`, `pp(0)`. */
  pp(name: string | number): WeightsView {
    return new WeightsView(this.source, this.key(String(name)));
  }

  key(name: string): string { return this.prefix ? `${this.prefix}.${name}` : name; }

  has(name: string): boolean { return this.source.has(this.key(name)); }

  /** The tensor `name`, checked against the expected shape (null entries match any size). */
  get(name: string, expected?: readonly (number | null)[]): Tensor {
    this.checkShape(name, expected);
    return this.source.read(this.key(name));
  }

  /**
   * The tensor for a graph: F32 tensors stored as-is are referenced by file and offset (nothing read;
   * ONNX Runtime reads them), others are read and converted.
   */
  forGraph(name: string, expected?: readonly (number | null)[]): Tensor & { file?: FileSpan } {
    const key = this.key(name);
    const loc = this.source.location?.(key);
    if (!loc) return this.get(name, expected);
    this.checkShape(name, expected);
    return { shape: [...this.source.shape(key)], data: EMPTY, file: { ...loc, load: () => this.source.read(key).data } };
  }

  private checkShape(name: string, expected?: readonly (number | null)[]): void {
    const key = this.key(name);
    if (!this.source.has(key)) {
      throw new FileFormatError(this.source.origin, `missing weight${expected ? ` (expected shape [${expected.map((d) => d ?? '?').join(', ')}])` : ''}`, key);
    }
    const shape = this.source.shape(key);
    if (expected && (shape.length !== expected.length || expected.some((d, i) => d !== null && d !== shape[i]))) {
      throw new FileFormatError(this.source.origin, `weight has shape [${shape.join(', ')}] but the config expects [${expected.map((d) => d ?? '?').join(', ')}]`, key);
    }
  }

  /** Shape without reading the data. */
  shape(name: string): readonly number[] {
    const key = this.key(name);
    if (!this.source.has(key)) throw new FileFormatError(this.source.origin, 'missing weight', key);
    return this.source.shape(key);
  }
}

/** Open the weights of one diffusers component folder (`unet/`, `vae/`, `text_encoder/`, ...). */
export function openComponentWeights(dir: string): TensorSource {
  const candidates = ['diffusion_pytorch_model.safetensors', 'model.safetensors'];
  for (const name of candidates) {
    const p = path.join(dir, name);
    if (fs.existsSync(p)) return new SafetensorsSource(p, [SafetensorsFile.open(p)]);
  }
  const index = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.safetensors.index.json')) : undefined;
  if (index) return openSharded(path.join(dir, index));
  const anyFile = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.safetensors')) : undefined;
  if (anyFile) return new SafetensorsSource(path.join(dir, anyFile), [SafetensorsFile.open(path.join(dir, anyFile))]);
  // torch pickles (diffusion_pytorch_model.bin, pytorch_model.bin), read weights-only: nothing in them is executed.
  const pickleIndex = fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => f.endsWith('.bin.index.json')) : undefined;
  if (pickleIndex) return openShardedTensorFiles(path.join(dir, pickleIndex));
  const pickles = ['diffusion_pytorch_model.bin', 'pytorch_model.bin'];
  const pickle = pickles.find((f) => fs.existsSync(path.join(dir, f))) ?? (fs.existsSync(dir) ? fs.readdirSync(dir).find((f) => /\.(bin|ckpt|pt|pth)$/.test(f)) : undefined);
  if (pickle) return openTensorSource(path.join(dir, pickle));
  throw new FileFormatError(dir, `no weights found (expected ${candidates.join(' or ')}, or a *.safetensors.index.json)`);
}

/** A sharded checkpoint: `{"weight_map": {key: "model-00001-of-00002.safetensors"}}`. */
export function openSharded(indexPath: string): SafetensorsSource {
  const entries = readShardIndex(indexPath);
  const dir = path.dirname(indexPath);
  const files = [...new Set(entries.map(([, f]) => f))].map((f) => SafetensorsFile.open(path.join(dir, f)));
  for (const [key, file] of entries) {
    const f = files.find((x) => path.basename(x.path) === file);
    if (!f?.has(key)) throw new FileFormatError(path.join(dir, file), `the shard index lists tensor ${key} here but the file does not hold it`, key);
  }
  return new SafetensorsSource(indexPath, files);
}
