/**
 * One component of a single-file (original-layout) checkpoint as a TensorSource under diffusers key names, so
 * `new WeightsView(source)` feeds the existing model builders unchanged. OpenCLIP's fused q/k/v are sliced on
 * demand by a positioned read of just the rows wanted.
 */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';
import { numel, type Tensor } from '../tensor.js';
import type { Header } from './original-architecture.js';
import { originalKeyOf, transpose2D, type OriginalComponentName, type OriginalLayoutContext } from './original-keymap.js';
import { toFloat32, type TensorInfo } from './safetensors.js';
import type { TensorFile } from './tensor-file.js';
import type { TensorSource } from './weights.js';

interface Entry {
  readonly stored: string;
  /** diffusers shape */
  readonly shape: readonly number[];
  /** Rows [begin, end) of the stored tensor (a q/k/v third of a fused in_proj). */
  readonly rows?: readonly [number, number];
  /** Stored as the transpose (OpenCLIP text_projection). */
  readonly transpose?: boolean;
}

/** Positioned reads of part of a tensor (its own descriptor, opened on first use). */
export class RowReader {
  private fd: number | undefined;
  constructor(readonly path: string) {}

  read(info: TensorInfo, begin: number, end: number): Float32Array {
    const n = numel(info.shape);
    const perRow = numel(info.shape.slice(1));
    const bytesPer = n === 0 ? 0 : info.byteLength / n;
    const start = info.offset + begin * perRow * bytesPer;
    const len = (end - begin) * perRow * bytesPer;
    this.fd ??= fs.openSync(this.path, 'r');
    const buf = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const got = fs.readSync(this.fd, buf, done, len - done, start + done);
      if (got === 0) throw new FileFormatError(this.path, `file ended while reading tensor data at byte ${start + done}`, info.name);
      done += got;
    }
    return toFloat32(buf, info.dtype, this.path, info.name);
  }

  close(): void {
    if (this.fd !== undefined) { fs.closeSync(this.fd); this.fd = undefined; }
  }
}

/** One component of an original-layout file under diffusers names. Reads are lazy and not kept, as SafetensorsSource's. */
export class OriginalLayoutSource implements TensorSource {
  constructor(readonly origin: string, private readonly file: TensorFile, private readonly entries: ReadonlyMap<string, Entry>, private readonly rowReader: RowReader) {}

  keys(): Iterable<string> { return this.entries.keys(); }
  has(key: string): boolean { return this.entries.has(key); }
  shape(key: string): readonly number[] { return this.entry(key).shape; }

  /** The stored (original-layout) name of a diffusers key. */
  storedName(key: string): string { return this.entry(key).stored; }

  read(key: string): Tensor {
    const e = this.entry(key);
    const info = this.file.info(e.stored) as TensorInfo & { contiguous?: boolean };
    // A strided (pickled, non-contiguous) tensor has no row span on disk: its reader gathers the rows.
    const data = !e.rows ? this.file.readFloat32(e.stored).data
      : info.contiguous === false ? this.file.readRows(e.stored, e.rows[0], e.rows[1] - e.rows[0]).data : this.rowReader.read(info, e.rows[0], e.rows[1]);
    return e.transpose ? transpose2D({ shape: [e.shape[1]!, e.shape[0]!], data }) : { shape: [...e.shape], data };
  }

  private entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) throw new FileFormatError(this.origin, 'missing weight', key);
    return e;
  }
}

export function buildEntries(h: Header, component: OriginalComponentName, keys: readonly string[], ctx: OriginalLayoutContext, rename?: (key: string) => string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const key of keys) {
    const ref = originalKeyOf(component, key, ctx);
    if (!ref) throw new Error(`original-checkpoint: no original name for ${component} key ${key}`);
    const stored = rename ? rename(ref.key) : ref.key;
    const info = h.file.tensors.get(stored);
    if (!info) throw new FileFormatError(h.path, `missing tensor: the ${component} needs it (diffusers name ${key})`, stored);
    let shape: readonly number[] = info.shape;
    let rows: [number, number] | undefined;
    if (ref.qkvPart !== undefined) {
      const total = info.shape[0] ?? 0;
      if (total % 3 !== 0 || total === 0) throw new FileFormatError(h.path, `fused q/k/v has shape [${info.shape.join(', ')}]; its first dimension should be 3 x hidden size`, stored);
      const third = total / 3;
      rows = [ref.qkvPart * third, (ref.qkvPart + 1) * third];
      shape = [third, ...info.shape.slice(1)];
    } else if (ref.conv1x1) {
      if (info.shape.length < 2 || info.shape.slice(2).some((d) => d !== 1)) {
        throw new FileFormatError(h.path, `expected a 1x1 conv or linear weight [C, C(, 1, 1)], got [${info.shape.join(', ')}]`, stored);
      }
      shape = info.shape.slice(0, 2);
    } else if (ref.transpose) {
      if (info.shape.length !== 2) throw new FileFormatError(h.path, `expected a 2-D projection matrix, got [${info.shape.join(', ')}]`, stored);
      shape = [info.shape[1]!, info.shape[0]!];
    }
    entries.set(key, { stored, shape, ...(rows ? { rows } : {}), ...(ref.transpose ? { transpose: true } : {}) });
  }
  return entries;
}
