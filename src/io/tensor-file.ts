/**
 * One reader for every weights file users have: `.safetensors`, torch zip checkpoints and legacy torch
 * pickles (`.ckpt`, `.pt`, `.pth`, `.bin`), told apart by their first bytes, never by their extension.
 * Pickles are read weights-only (see pickle.ts): nothing in a file is executed.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { SafetensorsFile, type DType, type TensorInfo } from './safetensors.js';
import { TorchCheckpointFile } from './torch-checkpoint.js';
import type { TensorSource } from './weights.js';
import { openForReading } from './open-file.js';

/** What SafetensorsFile and TorchCheckpointFile both offer (weight names: see torch-checkpoint.ts). */
export interface TensorFile {
  readonly path: string;
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  has(name: string): boolean;
  info(name: string): TensorInfo;
  /** The tensor's elements, row-major, little-endian. */
  readBytes(name: string): Buffer;
  readFloat32(name: string): Tensor;
  readRows(name: string, start: number, count: number): Tensor;
  readInts(name: string): { shape: number[]; data: number[] };
  close(): void;
}

export type TensorFileFormat = 'safetensors' | 'torch-zip' | 'torch-legacy';

/** The format by magic bytes: a zip archive (`PK`), a pickle (`\x80` PROTO) or a safetensors header (`u64 length` then `{`). */
export function tensorFileFormat(path: string): TensorFileFormat {
  const fd = openForReading(path);
  try {
    const head = Buffer.alloc(9);
    const n = fs.readSync(fd, head, 0, 9, 0);
    // safetensors first: its little-endian header length may itself begin with 0x80 or 'PK'.
    if (n === 9 && head[8] === 0x7b) return 'safetensors';
    if (n >= 2 && head[0] === 0x50 && head[1] === 0x4b) return 'torch-zip';
    if (n >= 2 && head[0] === 0x80 && head[1]! >= 2 && head[1]! <= 5) return 'torch-legacy';
    throw new FileFormatError(path, `not a safetensors file or torch checkpoint (first bytes ${head.subarray(0, n).toString('hex')})`);
  } finally {
    fs.closeSync(fd);
  }
}

/** Open a weights file of any supported format. */
export function openTensorFile(path: string): TensorFile & { readonly format: TensorFileFormat } {
  const format = tensorFileFormat(path);
  if (format === 'safetensors') return Object.assign(SafetensorsFile.open(path), { format });
  return TorchCheckpointFile.open(path);
}

/** Whether a path names a torch pickle (by content, for files that exist). */
export function isTorchPickle(path: string): boolean {
  try { return tensorFileFormat(path) !== 'safetensors'; } catch { return false; }
}

export interface InspectEntry {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
}

/**
 * Every tensor of a file without reading tensor data: safetensors keys, or for pickles the path of
 * dict keys / list indices inside the saved object joined with '/'.
 */
export function inspectTensorFile(path: string): InspectEntry[] {
  const f = openTensorFile(path);
  try {
    const list = f instanceof TorchCheckpointFile ? f.entries : [...f.tensors.values()];
    return list.map((t) => ({ name: t.name, dtype: t.dtype, shape: [...t.shape] }));
  } finally {
    f.close();
  }
}

/**
 * Any weights file as a TensorSource (optionally renamed: return undefined to drop a key). Reads are
 * lazy and not kept, as SafetensorsSource's; F32 tensors stored contiguously are offered by location.
 */
export class TensorFileSource implements TensorSource {
  private readonly byKey = new Map<string, string>();

  constructor(readonly file: TensorFile, rename?: (stored: string) => string | undefined, readonly origin: string = file.path) {
    for (const stored of file.tensors.keys()) {
      const key = rename ? rename(stored) : stored;
      if (key !== undefined) this.byKey.set(key, stored);
    }
  }

  keys(): Iterable<string> { return this.byKey.keys(); }
  has(key: string): boolean { return this.byKey.has(key); }
  shape(key: string): readonly number[] { return this.file.info(this.stored(key)).shape; }
  read(key: string): Tensor { return this.file.readFloat32(this.stored(key)); }

  location(key: string): { path: string; offset: number } | undefined {
    const info = this.file.info(this.stored(key)) as TensorInfo & { contiguous?: boolean };
    return info.dtype === 'F32' && info.contiguous !== false && info.offset % 4 === 0 ? { path: this.file.path, offset: info.offset } : undefined;
  }

  private stored(key: string): string {
    const s = this.byKey.get(key);
    if (s === undefined) throw new FileFormatError(this.origin, 'missing weight', key);
    return s;
  }
}

/** Open any weights file as a TensorSource. */
export function openTensorSource(path: string, rename?: (stored: string) => string | undefined): TensorFileSource {
  return new TensorFileSource(openTensorFile(path), rename);
}

/**
 * The (tensor key, shard file name) pairs of a shard index `{"weight_map": {key: "model-00001-of-00002.safetensors"}}`,
 * each shard a plain file name beside the index (never a path that leaves its folder).
 */
export function readShardIndex(indexPath: string): [string, string][] {
  let index: { weight_map?: unknown } | null;
  try {
    index = JSON.parse(fs.readFileSync(indexPath, 'utf8')) as typeof index;
  } catch (e) {
    throw new FileFormatError(indexPath, `cannot read shard index (${(e as Error).message})`);
  }
  const map = index?.weight_map; // (a file holding just `null` is JSON too)
  if (!map || typeof map !== 'object' || Array.isArray(map)) throw new FileFormatError(indexPath, 'shard index has no weight_map object', 'weight_map');
  const dir = path.dirname(indexPath);
  return Object.entries(map as Record<string, unknown>).map(([key, shard]) => {
    if (typeof shard !== 'string' || shard.includes('/') || shard.includes('\\')) throw new FileFormatError(indexPath, `shard ${JSON.stringify(shard)} is not a file name in ${dir}`, key);
    return [key, shard];
  });
}

/**
 * A sharded pickle checkpoint (`pytorch_model.bin.index.json`: `{"weight_map": {key: shard}}`), every
 * shard read weights-only; the index is checked against the shards when opened.
 */
export function openShardedTensorFiles(indexPath: string): TensorSource {
  const dir = path.dirname(indexPath);
  const shards = new Map<string, TensorFileSource>();
  const byKey = new Map<string, TensorFileSource>();
  for (const [key, shard] of readShardIndex(indexPath)) {
    let src = shards.get(shard);
    if (!src) { src = openTensorSource(path.join(dir, shard)); shards.set(shard, src); }
    if (!src.has(key)) throw new FileFormatError(path.join(dir, shard), `the shard index lists tensor ${key} here but the file does not hold it`, key);
    byKey.set(key, src);
  }
  const of = (key: string): TensorFileSource => {
    const src = byKey.get(key);
    if (!src) throw new FileFormatError(indexPath, 'missing weight', key);
    return src;
  };
  return {
    origin: indexPath,
    keys: () => byKey.keys(),
    has: (key) => byKey.has(key),
    shape: (key) => of(key).shape(key),
    read: (key) => of(key).read(key),
    location: (key) => of(key).location(key),
  };
}
