/**
 * safetensors: an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}}` and raw little-endian data.
 * The header is validated in full before any tensor is read, and tensors are read lazily with
 * positioned reads, so a multi-gigabyte checkpoint is never loaded whole and never read outside the file.
 */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';
import { numel, type Tensor } from '../tensor.js';
import { openForReading } from './open-file.js';

export type DType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const DTYPE_BYTES: Record<DType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Largest header we accept (the format's reference implementation uses 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export interface TensorInfo {
  readonly name: string;
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Absolute byte offset of the data in the file. */
  readonly offset: number;
  readonly byteLength: number;
}

export class SafetensorsFile {
  readonly tensors: ReadonlyMap<string, TensorInfo>;
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | undefined;

  private constructor(readonly path: string, fd: number, tensors: Map<string, TensorInfo>, metadata: Record<string, string>) {
    this.fd = fd;
    this.tensors = tensors;
    this.metadata = metadata;
  }

  static open(path: string): SafetensorsFile {
    const fd = openForReading(path);
    try {
      const { tensors, metadata } = parseHeader(path, fd);
      return new SafetensorsFile(path, fd, tensors, metadata);
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean { return this.tensors.has(name); }

  info(name: string): TensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FileFormatError(this.path, 'no such tensor', name);
    return t;
  }

  /** Raw bytes of one tensor (a fresh buffer; positioned read, nothing else of the file is touched). */
  readBytes(name: string): Buffer {
    const t = this.info(name);
    if (this.fd === undefined) throw new FileFormatError(this.path, 'file already closed', name);
    const buf = Buffer.allocUnsafe(t.byteLength);
    let done = 0;
    while (done < t.byteLength) {
      const n = fs.readSync(this.fd, buf, done, t.byteLength - done, t.offset + done);
      if (n === 0) throw new FileFormatError(this.path, `file ended while reading tensor data at byte ${t.offset + done}`, name);
      done += n;
    }
    return buf;
  }

  /** A floating-point tensor converted to float32 (F16/BF16/F64 upcast or rounded as needed). */
  readFloat32(name: string): Tensor {
    const t = this.info(name);
    const bytes = this.readBytes(name);
    return { shape: [...t.shape], data: toFloat32(bytes, t.dtype, this.path, name) };
  }

  /** Rows [start, start + count) along the first axis of a float tensor (positioned read of just those bytes). */
  readRows(name: string, start: number, count: number): Tensor {
    const t = this.info(name);
    const rowElems = numel(t.shape.slice(1));
    const rowBytes = rowElems * DTYPE_BYTES[t.dtype];
    if (start < 0 || count < 0 || start + count > (t.shape[0] ?? 0)) throw new FileFormatError(this.path, `rows [${start}, ${start + count}) outside [0, ${t.shape[0]})`, name);
    if (this.fd === undefined) throw new FileFormatError(this.path, 'file already closed', name);
    const buf = Buffer.allocUnsafe(count * rowBytes);
    let done = 0;
    while (done < buf.length) {
      const n = fs.readSync(this.fd, buf, done, buf.length - done, t.offset + start * rowBytes + done);
      if (n === 0) throw new FileFormatError(this.path, 'file ended while reading rows', name);
      done += n;
    }
    return { shape: [count, ...t.shape.slice(1)], data: toFloat32(buf, t.dtype, this.path, name) };
  }

  /** Integer tensor as plain numbers (I64 must fit in a double's integer range). */
  readInts(name: string): { shape: number[]; data: number[] } {
    const t = this.info(name);
    const b = this.readBytes(name);
    const n = numel(t.shape);
    const out: number[] = new Array(n);
    const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let i = 0; i < n; i++) {
      switch (t.dtype) {
        case 'I64': out[i] = Number(dv.getBigInt64(i * 8, true)); break;
        case 'I32': out[i] = dv.getInt32(i * 4, true); break;
        case 'I16': out[i] = dv.getInt16(i * 2, true); break;
        case 'I8': out[i] = dv.getInt8(i); break;
        case 'U8': case 'BOOL': out[i] = dv.getUint8(i); break;
        default: throw new FileFormatError(this.path, `expected an integer tensor, got dtype ${t.dtype}`, name);
      }
    }
    return { shape: [...t.shape], data: out };
  }

  close(): void {
    if (this.fd !== undefined) { fs.closeSync(this.fd); this.fd = undefined; }
  }
}

function parseHeader(path: string, fd: number): { tensors: Map<string, TensorInfo>; metadata: Record<string, string> } {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw new FileFormatError(path, `not a safetensors file: ${size} bytes, fewer than the 8-byte header length`);
  const lenBuf = Buffer.alloc(8);
  fs.readSync(fd, lenBuf, 0, 8, 0);
  // torch.save files (zip archive or legacy pickle) have their own reader (tensor-file.ts), by content not extension.
  const ninth = Buffer.alloc(1);
  fs.readSync(fd, ninth, 0, 1, 8);
  if (ninth[0] !== 0x7b && ((lenBuf[0] === 0x50 && lenBuf[1] === 0x4b) || lenBuf[0] === 0x80)) {
    throw new FileFormatError(path, 'this is a torch checkpoint (zip archive or pickle), not a safetensors file; open it with openTensorFile (weights-only)');
  }
  const headerLen = lenBuf.readBigUInt64LE(0);
  if (headerLen > BigInt(MAX_HEADER_BYTES) || headerLen > BigInt(size - 8)) {
    throw new FileFormatError(path, `not a safetensors file or truncated: header length ${headerLen} bytes but the file has ${size} bytes`);
  }
  const n = Number(headerLen);
  const hb = Buffer.alloc(n);
  fs.readSync(fd, hb, 0, n, 8);
  let header: unknown;
  try {
    header = JSON.parse(hb.toString('utf8'));
  } catch (e) {
    throw new FileFormatError(path, `header is not valid JSON (${(e as Error).message})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw new FileFormatError(path, 'header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  const spans: [number, number, string][] = [];
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (raw && typeof raw === 'object') metadata = Object.fromEntries(Object.entries(raw as Record<string, unknown>).map(([k, v]) => [k, String(v)]));
      continue;
    }
    const e = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof e !== 'object' || e === null) throw new FileFormatError(path, 'header entry is not an object', name);
    const dtype = e.dtype as DType;
    if (typeof e.dtype !== 'string' || !Object.hasOwn(DTYPE_BYTES, e.dtype)) { // not `in`: 'toString' is in every object
      throw new FileFormatError(path, `unknown dtype ${JSON.stringify(e.dtype)} (expected one of ${Object.keys(DTYPE_BYTES).join(', ')})`, name);
    }
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new FileFormatError(path, `shape ${JSON.stringify(e.shape)} is not a list of non-negative integers`, name);
    }
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isSafeInteger(d) && d >= 0) || off[0] > off[1]) {
      throw new FileFormatError(path, `data_offsets ${JSON.stringify(off)} are not [begin, end] with 0 <= begin <= end`, name);
    }
    const [b, en] = off as [number, number];
    const expected = numel(e.shape as number[]) * DTYPE_BYTES[dtype];
    if (en - b !== expected) {
      throw new FileFormatError(path, `shape [${(e.shape as number[]).join(', ')}] x ${dtype} needs ${expected} bytes but data_offsets span ${en - b}`, name);
    }
    if (en > dataLen) {
      throw new FileFormatError(path, `data ends at byte ${en} of the data section but the file holds only ${dataLen} bytes after the header (truncated file?)`, name);
    }
    spans.push([b, en, name]);
    tensors.set(name, { name, dtype, shape: e.shape as number[], offset: dataStart + b, byteLength: en - b });
  }
  spans.sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  for (let i = 1; i < spans.length; i++) {
    const [pb, pe, pn] = spans[i - 1]!;
    const [cb, , cn] = spans[i]!;
    if (cb < pe && pe > pb) throw new FileFormatError(path, `data overlaps tensor ${pn} (bytes ${cb} < ${pe})`, cn);
  }
  return { tensors, metadata };
}

const f16Table = (() => {
  const t = new Float32Array(65536);
  for (let u = 0; u < 65536; u++) {
    const s = u >> 15, e = (u >> 10) & 31, m = u & 1023;
    const v = e === 0 ? m * 2 ** -24 : e === 31 ? (m ? NaN : Infinity) : (1 + m / 1024) * 2 ** (e - 15);
    t[u] = s ? -v : v;
  }
  return t;
})();

export function toFloat32(bytes: Buffer, dtype: DType, path: string, name: string): Float32Array {
  const n = bytes.byteLength / DTYPE_BYTES[dtype];
  const out = new Float32Array(n);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  switch (dtype) {
    case 'F32':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat32(i * 4, true);
      return out;
    case 'F16':
      for (let i = 0; i < n; i++) out[i] = f16Table[dv.getUint16(i * 2, true)]!;
      return out;
    case 'BF16': {
      const u = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) u[i] = dv.getUint16(i * 2, true) << 16;
      return out;
    }
    case 'F64':
      for (let i = 0; i < n; i++) out[i] = dv.getFloat64(i * 8, true);
      return out;
    default:
      throw new FileFormatError(path, `expected a floating-point tensor (F32, F16, BF16, F64), got ${dtype}`, name);
  }
}

export interface WriteEntry {
  readonly shape: readonly number[];
  readonly data: Float32Array | Uint8Array | BigInt64Array;
}

/** Write tensors (F32, U8 or I64 by the array's type) with optional string metadata. */
export function writeSafetensors(path: string, entries: Record<string, WriteEntry | Tensor>, metadata?: Record<string, string>): void {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const parts: Buffer[] = [];
  let off = 0;
  for (const [name, t] of Object.entries(entries)) {
    const dtype = t.data instanceof Float32Array ? 'F32' : t.data instanceof Uint8Array ? 'U8' : 'I64';
    const b = Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    if (numel(t.shape) * DTYPE_BYTES[dtype] !== b.length) throw new Error(`writeSafetensors: ${name} shape [${t.shape}] does not match its data`);
    header[name] = { dtype, shape: t.shape, data_offsets: [off, off + b.length] };
    parts.push(b);
    off += b.length;
  }
  let h = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (h.length % 8)) % 8;
  h = Buffer.concat([h, Buffer.alloc(pad, 0x20)]);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(path, Buffer.concat([len, h, ...parts]));
}

/** Read every float tensor of a small file (goldens, latents) into memory. */
export function readAllFloat32(path: string): Record<string, Tensor> {
  const f = SafetensorsFile.open(path);
  try {
    const out: Record<string, Tensor> = {};
    for (const [name, info] of f.tensors) {
      if (['F32', 'F16', 'BF16', 'F64'].includes(info.dtype)) out[name] = f.readFloat32(name);
    }
    return out;
  } finally {
    f.close();
  }
}

/**
 * A safetensors file written row block by row block: the header (all shapes, F32) is written first,
 * then rows land at their offsets, so tensors larger than memory (embedding caches) can be produced.
 */
export class SafetensorsWriter {
  private fd: number;
  private readonly offsets = new Map<string, { offset: number; rowBytes: number; rows: number }>();

  constructor(readonly path: string, entries: readonly { name: string; shape: readonly number[] }[], metadata?: Record<string, string>) {
    const header: Record<string, unknown> = {};
    if (metadata) header.__metadata__ = metadata;
    let off = 0;
    const layout: [string, number, number, number][] = [];
    for (const e of entries) {
      const bytes = numel(e.shape) * 4;
      header[e.name] = { dtype: 'F32', shape: e.shape, data_offsets: [off, off + bytes] };
      layout.push([e.name, off, bytes / Math.max(1, e.shape[0] ?? 1), e.shape[0] ?? 1]);
      off += bytes;
    }
    let h = Buffer.from(JSON.stringify(header), 'utf8');
    h = Buffer.concat([h, Buffer.alloc((8 - (h.length % 8)) % 8, 0x20)]);
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(h.length));
    this.fd = fs.openSync(path, 'w');
    fs.writeSync(this.fd, len, 0, 8, 0);
    fs.writeSync(this.fd, h, 0, h.length, 8);
    fs.ftruncateSync(this.fd, 8 + h.length + off);
    for (const [name, o, rowBytes, rows] of layout) this.offsets.set(name, { offset: 8 + h.length + o, rowBytes, rows });
  }

  writeRows(name: string, start: number, data: Float32Array): void {
    const e = this.offsets.get(name);
    if (!e) throw new Error(`SafetensorsWriter: no tensor ${name}`);
    const b = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (start * e.rowBytes + b.length > e.rows * e.rowBytes) throw new Error(`SafetensorsWriter: rows past the end of ${name}`);
    fs.writeSync(this.fd, b, 0, b.length, e.offset + start * e.rowBytes);
  }

  close(): void { fs.closeSync(this.fd); }
}
