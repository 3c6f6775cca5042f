/**
 * torch.save files read weights-only: the zip format (`<archive>/data.pkl` + one stored member
 * `<archive>/data/<key>` per storage) and the legacy format (pickled magic number, protocol, sys info,
 * the object pickle, the pickled list of storage keys, then each storage as an int64 element count and
 * its raw bytes). Only the pickles are read into memory (through the allow-list unpickler of pickle.ts);
 * tensor bytes stay in the file and are read by positioned reads when asked for, like safetensors.
 *
 * Names: `entries` lists every tensor under its full path in the saved object, dict keys / list
 * indices joined with '/' (what `visprompt inspect` prints). `tensors` (the TensorFile view used for
 * weights) unwraps a top-level `state_dict` (as diffusers and ldm do) and joins the remaining path
 * with '.', so `{'image_proj': {'proj.weight': t}}` is `image_proj.proj.weight`, the key of the
 * safetensors twin.
 */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';
import { numel, type Tensor } from '../tensor.js';
import {
  DTYPE_SIZE, PickleTruncated, PyDict, PyGlobal, PyStorage, PyTensor, PyTuple, kindOf, storageDType, unpickle,
  type PyValue, type StorageLocation,
} from './pickle.js';
import { toFloat32, type DType, type TensorInfo } from './safetensors.js';
import { readAt, readZipDirectory } from './zip.js';
import { openForReading } from './open-file.js';

/** A pickled tensor: a strided view of a storage. `offset`/`byteLength` span its data only when `contiguous`. */
export interface PickledTensorInfo extends TensorInfo {
  readonly stride: readonly number[];
  /** In elements. */
  readonly storageOffset: number;
  readonly storageKey: string;
  readonly contiguous: boolean;
  /** Absolute file offset of the storage's first byte. */
  readonly storageDataOffset: number;
}

export type TorchFormat = 'torch-zip' | 'torch-legacy';

/** Largest pickle read into memory (SD checkpoints' pickles are about 1 MB). */
const MAX_PICKLE_BYTES = 512 * 1024 * 1024;
/** Nesting and node-visit budgets for walking the unpickled object (memo references can form DAGs and cycles). */
const MAX_DEPTH = 64;
const MAX_VISITS = 10_000_000;
const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;
const LEGACY_PROTOCOL = 1001;

export class TorchCheckpointFile {
  /** Every tensor with its '/'-joined path in the saved object, in pickling order. */
  readonly entries: readonly PickledTensorInfo[];
  /** Weights by '.'-joined name (top-level `state_dict` unwrapped). */
  readonly tensors: ReadonlyMap<string, PickledTensorInfo>;
  /** Top-level plain values (ints, floats, strings, bools), as strings: e.g. `global_step`. */
  readonly metadata: Readonly<Record<string, string>>;
  private fd: number | undefined;

  private constructor(readonly path: string, fd: number, readonly format: TorchFormat, readonly root: PyValue) {
    this.fd = fd;
    this.entries = flatten(path, root, '/').map(([name, t]) => describe(name, t));
    let weights = root;
    while (weights instanceof PyDict && weights.get('state_dict') instanceof PyDict) weights = weights.get('state_dict') as PyDict;
    const byName = new Map<string, PickledTensorInfo>();
    for (const [name, t] of flatten(path, weights, '.')) {
      if (byName.has(name)) throw new FileFormatError(path, 'two tensors in the checkpoint flatten to the same name', name);
      byName.set(name, describe(name, t));
    }
    this.tensors = byName;
    const metadata: Record<string, string> = {};
    for (const d of new Set([root, weights])) {
      if (!(d instanceof PyDict)) continue;
      for (const [k, v] of d.entries.values()) {
        if (typeof k === 'string' && (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'string' || typeof v === 'boolean')) metadata[k] = String(v);
      }
    }
    this.metadata = metadata;
  }

  /** Open a torch.save file (zip or legacy, told apart by the first bytes). */
  static open(path: string): TorchCheckpointFile {
    const fd = openForReading(path);
    try {
      const size = fs.fstatSync(fd).size;
      const head = readAt(fd, path, 0, Math.min(size, 4), 'the file header');
      if (head.length >= 2 && head[0] === 0x50 && head[1] === 0x4b) return new TorchCheckpointFile(path, fd, 'torch-zip', loadZip(fd, path, size));
      if (head.length >= 2 && head[0] === 0x80) return new TorchCheckpointFile(path, fd, 'torch-legacy', loadLegacy(fd, path, size));
      throw new FileFormatError(path, 'not a torch checkpoint (neither a zip archive nor a pickle)');
    } catch (e) {
      fs.closeSync(fd);
      throw e;
    }
  }

  has(name: string): boolean { return this.tensors.has(name); }

  info(name: string): PickledTensorInfo {
    const t = this.tensors.get(name);
    if (!t) throw new FileFormatError(this.path, 'no such tensor', name);
    return t;
  }

  /** The tensor's elements in row-major order, little-endian (a fresh buffer; only its bytes are read). */
  readBytes(name: string): Buffer {
    return this.bytesOf(this.info(name));
  }

  /** Bytes of any tensor of `entries` or `tensors`. */
  bytesOf(t: PickledTensorInfo): Buffer {
    if (this.fd === undefined) throw new FileFormatError(this.path, 'file already closed', t.name);
    if (t.contiguous) return readAt(this.fd, this.path, t.offset, t.byteLength, `tensor ${t.name}`);
    // A strided view: read the span it touches, then gather its elements in row-major order.
    const size = DTYPE_SIZE[t.dtype];
    let last = 0;
    t.shape.forEach((d, i) => { last += (d - 1) * t.stride[i]!; });
    const span = readAt(this.fd, this.path, t.storageDataOffset + t.storageOffset * size, (last + 1) * size, `tensor ${t.name}`);
    const out = Buffer.allocUnsafe(t.byteLength);
    const n = t.byteLength / size;
    const rank = t.shape.length;
    const idx = new Array<number>(rank).fill(0);
    let src = 0;
    for (let i = 0; i < n; i++) {
      span.copy(out, i * size, src * size, src * size + size);
      for (let d = rank - 1; d >= 0; d--) {
        idx[d]!++;
        src += t.stride[d]!;
        if (idx[d]! < t.shape[d]!) break;
        src -= t.stride[d]! * t.shape[d]!;
        idx[d] = 0;
      }
    }
    return out;
  }

  /** A floating-point tensor converted to float32. */
  readFloat32(name: string): Tensor {
    const t = this.info(name);
    return { shape: [...t.shape], data: toFloat32(this.readBytes(name), t.dtype, this.path, name) };
  }

  /** Rows [start, start + count) along the first axis of a float tensor. */
  readRows(name: string, start: number, count: number): Tensor {
    const t = this.info(name);
    if (start < 0 || count < 0 || start + count > (t.shape[0] ?? 0)) throw new FileFormatError(this.path, `rows [${start}, ${start + count}) outside [0, ${t.shape[0]})`, name);
    const row = numel(t.shape.slice(1));
    const all = this.readFloat32(name).data;
    return { shape: [count, ...t.shape.slice(1)], data: all.slice(start * row, (start + count) * row) };
  }

  /** Integer tensor as plain numbers (I64 must fit in a double's integer range). */
  readInts(name: string): { shape: number[]; data: number[] } {
    const t = this.info(name);
    return { shape: [...t.shape], data: intsOf(this.readBytes(name), t.dtype, this.path, name) };
  }

  close(): void {
    if (this.fd !== undefined) { fs.closeSync(this.fd); this.fd = undefined; }
  }
}

export function intsOf(b: Buffer, dtype: DType, file: string, name: string): number[] {
  const n = b.byteLength / DTYPE_SIZE[dtype];
  const out: number[] = new Array(n);
  for (let i = 0; i < n; i++) {
    switch (dtype) {
      case 'I64': out[i] = Number(b.readBigInt64LE(i * 8)); break;
      case 'I32': out[i] = b.readInt32LE(i * 4); break;
      case 'I16': out[i] = b.readInt16LE(i * 2); break;
      case 'I8': out[i] = b.readInt8(i); break;
      case 'U8': case 'BOOL': out[i] = b[i]!; break;
      default: throw new FileFormatError(file, `expected an integer tensor, got dtype ${dtype}`, name);
    }
  }
  return out;
}

function describe(name: string, t: PyTensor): PickledTensorInfo {
  const size = DTYPE_SIZE[t.dtype];
  let expected = 1;
  let contiguous = true;
  for (let i = t.shape.length - 1; i >= 0; i--) {
    if (t.shape[i]! !== 1 && t.stride[i] !== expected) contiguous = false;
    expected *= t.shape[i]!;
  }
  const n = numel(t.shape);
  if (n === 0) contiguous = true;
  return {
    name, dtype: t.dtype, shape: t.shape,
    offset: t.storage.location.offset + t.storageOffset * size,
    byteLength: n * size,
    stride: t.stride, storageOffset: t.storageOffset, storageKey: t.storage.key, contiguous,
    storageDataOffset: t.storage.location.offset,
  };
}

/** Every tensor under `root` with its path joined by `sep` (dicts by key, lists and tuples by index). */
function flatten(file: string, root: PyValue, sep: string): [string, PyTensor][] {
  const out: [string, PyTensor][] = [];
  let visits = 0;
  const walk = (v: PyValue, path: string[]): void => {
    if (++visits > MAX_VISITS) throw new FileFormatError(file, `refused: the pickled object has more than ${MAX_VISITS} references (memo loops)`);
    if (path.length > MAX_DEPTH) throw new FileFormatError(file, `refused: the pickled object nests deeper than ${MAX_DEPTH} levels (or refers to itself)`);
    if (v instanceof PyTensor) { out.push([path.join(sep), v]); return; }
    if (v instanceof PyDict) {
      for (const [k, x] of v.entries.values()) walk(x, [...path, keyName(k)]);
    } else if (Array.isArray(v) || v instanceof PyTuple) {
      const items = Array.isArray(v) ? v : v.items;
      items.forEach((x, i) => walk(x, [...path, String(i)]));
    }
  };
  walk(root, []);
  return out;
}

function keyName(k: PyValue): string {
  if (typeof k === 'string') return k;
  if (typeof k === 'number' || typeof k === 'bigint') return String(k);
  if (typeof k === 'boolean') return k ? 'True' : 'False';
  if (k === null) return 'None';
  if (k instanceof PyTuple) return `(${k.items.map(keyName).join(', ')})`;
  return kindOf(k);
}

interface StorageRef { dtype: DType; numel: number; location: StorageLocation }

/** Check a persistent id `('storage', StorageType, key, location, numel[, view])` and return its parts. */
function storagePid(file: string, pid: PyValue, legacy: boolean): { dtype: DType; key: string; numel: number } {
  const bad = (msg: string): never => { throw new FileFormatError(file, `refused pickle: persistent id ${msg}`); };
  const n = legacy ? 6 : 5;
  if (!(pid instanceof PyTuple) || pid.items.length !== n) return bad(`is a ${kindOf(pid)}${pid instanceof PyTuple ? ` of ${pid.items.length} items` : ''}, not a ${n}-tuple ('storage', type, key, location, size${legacy ? ', view' : ''})`);
  const [tag, type, key, location, count, view] = pid.items;
  if (tag !== 'storage') bad(`tag ${JSON.stringify(typeof tag === 'string' ? tag : kindOf(tag!))} (expected 'storage')`);
  const dtype = type instanceof PyGlobal ? storageDType(type) : undefined;
  if (!dtype) bad(`storage type is a ${kindOf(type!)}`);
  if (typeof key !== 'string' || !/^[0-9A-Za-z_.-]{1,64}$/.test(key)) bad(`storage key ${typeof key === 'string' ? JSON.stringify(key.slice(0, 80)) : kindOf(key!)} is not a short name`);
  if (typeof location !== 'string') bad(`location is a ${kindOf(location!)}`);
  if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) bad(`storage size ${String(count)} is not a non-negative integer`);
  if (legacy && view !== null) bad('is a storage view (pre-1.0 torch files), which is not supported');
  return { dtype: dtype!, key: key as string, numel: count as number };
}

function loadZip(fd: number, file: string, size: number): PyValue {
  const members = readZipDirectory(fd, file, size);
  const pkls = [...members.keys()].filter((n) => /^[^/]+\/data\.pkl$/.test(n) || n === 'data.pkl');
  if (pkls.length !== 1) throw new FileFormatError(file, `not a torch checkpoint: expected one <archive>/data.pkl member, found ${pkls.length} (members: ${[...members.keys()].slice(0, 5).join(', ')})`);
  const pklName = pkls[0]!;
  const prefix = pklName.slice(0, -'data.pkl'.length);
  const pkl = members.get(pklName)!;
  if (pkl.method !== 0) throw new FileFormatError(file, `member ${pklName} is compressed (method ${pkl.method}); torch.save stores members uncompressed`);
  if (pkl.size > MAX_PICKLE_BYTES) throw new FileFormatError(file, `refused: ${pklName} is ${pkl.size} bytes (at most ${MAX_PICKLE_BYTES})`);
  const byteorder = members.get(`${prefix}byteorder`);
  if (byteorder && byteorder.size <= 16) {
    const order = readAt(fd, file, byteorder.offset, byteorder.size, 'the byteorder record').toString('latin1').trim();
    if (order !== 'little') throw new FileFormatError(file, `storages are ${order}-endian; only little-endian checkpoints are supported`, `${prefix}byteorder`);
  }
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    const { dtype, key, numel: count } = storagePid(file, pid, false);
    let s = storages.get(key);
    if (!s) {
      const m = members.get(`${prefix}data/${key}`);
      if (!m) throw new FileFormatError(file, `storage '${key}' has no member ${prefix}data/${key} (truncated archive?)`);
      if (m.method !== 0) throw new FileFormatError(file, `member ${m.name} is compressed (method ${m.method}); torch.save stores members uncompressed`);
      s = { dtype, numel: count, location: { offset: m.offset, nbytes: m.size } };
      storages.set(key, s);
    }
    // Views of one storage may use other dtypes (torch reinterprets the bytes); each must fit the member.
    if (count * DTYPE_SIZE[dtype] > s.location.nbytes) {
      throw new FileFormatError(file, `storage '${key}' claims ${count} x ${dtype} (${count * DTYPE_SIZE[dtype]} bytes) but its member holds ${s.location.nbytes} bytes`);
    }
    return new PyStorage(key, dtype, count, s.location);
  };
  const data = readAt(fd, file, pkl.offset, pkl.size, pklName);
  const { value, end } = unpickle(data, { file, where: pklName, persistentLoad });
  if (end !== data.length) throw new FileFormatError(file, `refused pickle in ${pklName}: ${data.length - end} bytes after its STOP opcode`);
  return value;
}

function loadLegacy(fd: number, file: string, size: number): PyValue {
  // The pickles come first and their length is not recorded: decode from a prefix, growing it if it ends early.
  let chunk = Math.min(size, 1 << 20);
  for (;;) {
    try {
      return loadLegacyFrom(fd, file, size, readAt(fd, file, 0, chunk, 'the pickles'));
    } catch (e) {
      if (!(e instanceof PickleTruncated) || chunk >= Math.min(size, MAX_PICKLE_BYTES)) throw e;
      chunk = Math.min(size, MAX_PICKLE_BYTES, chunk * 4);
    }
  }
}

function loadLegacyFrom(fd: number, file: string, size: number, buf: Buffer): PyValue {
  const notTorch = (msg: string): never => { throw new FileFormatError(file, `not a torch checkpoint (legacy format): ${msg}`); };
  const magic = unpickle(buf, { file, where: 'the magic number' });
  if (magic.value !== LEGACY_MAGIC) notTorch('wrong magic number');
  const protocol = unpickle(buf, { file, where: 'the protocol version' }, magic.end);
  if (protocol.value !== LEGACY_PROTOCOL) notTorch(`protocol version ${String(protocol.value)} (expected ${LEGACY_PROTOCOL})`);
  const sys = unpickle(buf, { file, where: 'sys_info' }, protocol.end);
  const little = sys.value instanceof PyDict ? sys.value.get('little_endian') : undefined;
  if (little !== true) notTorch(little === false ? 'the storages are big-endian' : 'sys_info has no little_endian entry');
  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    const { dtype, key, numel: count } = storagePid(file, pid, true);
    let s = storages.get(key);
    if (!s) {
      s = { dtype, numel: count, location: { offset: -1, nbytes: 0 } };
      storages.set(key, s);
    } else if (s.dtype !== dtype || s.numel !== count) {
      throw new FileFormatError(file, `storage '${key}' is referenced as ${s.numel} x ${s.dtype} and as ${count} x ${dtype}`);
    }
    return new PyStorage(key, dtype, count, s.location);
  };
  const obj = unpickle(buf, { file, where: 'the object pickle', persistentLoad }, sys.end);
  const keysPickle = unpickle(buf, { file, where: 'the storage key list' }, obj.end);
  const keys = keysPickle.value;
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) notTorch(`the storage key list is a ${kindOf(keys)}, not a list of strings`);
  if ((keys as string[]).length !== storages.size || (keys as string[]).some((k) => !storages.has(k))) {
    notTorch(`the storage key list (${(keys as string[]).length} keys) does not match the ${storages.size} storages the object pickle uses`);
  }
  // Each storage: int64 element count, then its bytes, in key-list order.
  let pos = keysPickle.end;
  for (const key of keys as string[]) {
    const s = storages.get(key)!;
    if (s.location.offset >= 0) notTorch(`storage '${key}' is listed twice`);
    if (pos + 8 > size) throw new FileFormatError(file, `file ends at byte ${size} before storage '${key}' (truncated)`);
    const count = readAt(fd, file, pos, 8, `the size of storage '${key}'`).readBigInt64LE(0);
    if (count !== BigInt(s.numel)) throw new FileFormatError(file, `storage '${key}' has ${count} elements in the file but ${s.numel} in the pickle`);
    const nbytes = s.numel * DTYPE_SIZE[s.dtype];
    if (pos + 8 + nbytes > size) throw new FileFormatError(file, `storage '${key}' (${nbytes} bytes at byte ${pos + 8}) runs past the end of the ${size}-byte file (truncated)`);
    s.location.offset = pos + 8;
    s.location.nbytes = nbytes;
    pos += 8 + nbytes;
  }
  return obj.value;
}
