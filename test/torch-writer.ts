/**
 * Test/bench support: write torch.save-compatible files without torch — a zip archive (stored members,
 * 64-byte aligned storages, as torch writes them) or the legacy format — holding an OrderedDict of
 * contiguous tensors built with _rebuild_tensor_v2, optionally wrapped as {'state_dict': ...}. Data is
 * streamed member by member, so multi-gigabyte files can be produced. Also raw pickle opcodes and a
 * zip container for hand-made (hostile) pickles.
 */
import fs from 'node:fs';
import type { DType } from '../src/io/safetensors.js';

export interface RawTensor {
  readonly dtype: DType;
  readonly shape: readonly number[];
  /** Little-endian element bytes, or a producer called once when the data is written. */
  readonly data: Uint8Array | (() => Uint8Array);
}

const STORAGE: Record<DType, string> = {
  F32: 'FloatStorage', F16: 'HalfStorage', BF16: 'BFloat16Storage', F64: 'DoubleStorage', I64: 'LongStorage',
  I32: 'IntStorage', I16: 'ShortStorage', I8: 'CharStorage', U8: 'ByteStorage', BOOL: 'BoolStorage',
};
const SIZE: Record<DType, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

/** Pickle opcode builders (protocol 2). */
export const op = {
  proto: (): Buffer => Buffer.from([0x80, 2]),
  stop: (): Buffer => Buffer.from('.'),
  mark: (): Buffer => Buffer.from('('),
  str: (s: string): Buffer => { const b = Buffer.from(s, 'utf8'); const h = Buffer.alloc(5); h[0] = 0x58; h.writeUInt32LE(b.length, 1); return Buffer.concat([h, b]); },
  int: (n: number): Buffer => { const h = Buffer.alloc(5); h[0] = 0x4a; h.writeInt32LE(n, 1); return h; },
  global: (module: string, name: string): Buffer => Buffer.from(`c${module}\n${name}\n`, 'utf8'),
  tuple: (): Buffer => Buffer.from('t'),
  emptyTuple: (): Buffer => Buffer.from(')'),
  emptyDict: (): Buffer => Buffer.from('}'),
  emptyList: (): Buffer => Buffer.from(']'),
  reduce: (): Buffer => Buffer.from('R'),
  setitems: (): Buffer => Buffer.from('u'),
  binpersid: (): Buffer => Buffer.from('Q'),
  false: (): Buffer => Buffer.from([0x89]),
  none: (): Buffer => Buffer.from('N'),
};

function ints(xs: readonly number[]): Buffer {
  return Buffer.concat([op.mark(), ...xs.map(op.int), op.tuple()]);
}

/** `_rebuild_tensor_v2(persistent storage key, 0, shape, contiguous stride, False, OrderedDict())`. */
export function tensorPickle(key: string, t: { dtype: DType; shape: readonly number[] }, legacy = false): Buffer {
  const numel = t.shape.reduce((a, b) => a * b, 1);
  const stride = t.shape.map((_, i) => t.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  return Buffer.concat([
    op.global('torch._utils', '_rebuild_tensor_v2'), op.mark(),
    op.mark(), op.str('storage'), op.global('torch', STORAGE[t.dtype]), op.str(key), op.str('cpu'), op.int(numel), ...(legacy ? [op.none()] : []), op.tuple(), op.binpersid(),
    op.int(0), ints(t.shape), ints(stride), op.false(), op.global('collections', 'OrderedDict'), op.emptyTuple(), op.reduce(),
    op.tuple(), op.reduce(),
  ]);
}

function statePickle(names: readonly string[], tensors: readonly RawTensor[], wrap: boolean, legacy: boolean): Buffer {
  const body = Buffer.concat([
    op.global('collections', 'OrderedDict'), op.emptyTuple(), op.reduce(), op.mark(),
    ...names.flatMap((n, i) => [op.str(n), tensorPickle(String(i), tensors[i]!, legacy)]),
    op.setitems(),
  ]);
  return Buffer.concat([op.proto(), wrap ? Buffer.concat([op.emptyDict(), op.str('state_dict'), body, Buffer.from('s')]) : body, op.stop()]);
}

/** Stored-member zip writer; members start 64-byte aligned (padding in the local extra field, as torch). */
export class ZipWriter {
  private readonly fd: number;
  private pos = 0;
  private readonly central: Buffer[] = [];
  private count = 0;
  constructor(readonly path: string) { this.fd = fs.openSync(path, 'w'); }

  add(name: string, data: Uint8Array): void {
    const nameBuf = Buffer.from(name, 'utf8');
    const base = this.pos + 30 + nameBuf.length + 4;
    const pad = (64 - (base % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0); extra.writeUInt16LE(pad, 2);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(20, 4); lh.writeUInt32LE(0, 14);
    lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(nameBuf.length, 26); lh.writeUInt16LE(extra.length, 28);
    const cd = Buffer.alloc(46);
    cd.writeUInt32LE(0x02014b50, 0); cd.writeUInt16LE(20, 4); cd.writeUInt16LE(20, 6);
    cd.writeUInt32LE(data.length, 20); cd.writeUInt32LE(data.length, 24); cd.writeUInt16LE(nameBuf.length, 28);
    cd.writeUInt32LE(this.pos, 42);
    this.central.push(cd, nameBuf);
    this.count++;
    for (const b of [lh, nameBuf, extra, data]) { fs.writeSync(this.fd, b, 0, b.length, this.pos); this.pos += b.length; }
  }

  close(): void {
    const cd = Buffer.concat(this.central);
    const end = Buffer.alloc(22);
    end.writeUInt32LE(0x06054b50, 0); end.writeUInt16LE(this.count, 8); end.writeUInt16LE(this.count, 10);
    end.writeUInt32LE(cd.length, 12); end.writeUInt32LE(this.pos, 16);
    fs.writeSync(this.fd, Buffer.concat([cd, end]), 0, cd.length + 22, this.pos);
    fs.closeSync(this.fd);
  }
}

const bytesOf = (t: RawTensor): Uint8Array => (typeof t.data === 'function' ? t.data() : t.data);

/** torch.save(OrderedDict(tensors)) in the zip format (or {'state_dict': ...} with wrap). */
export function writeTorchZip(path: string, tensors: Record<string, RawTensor>, opts: { wrap?: boolean; archive?: string } = {}): void {
  const names = Object.keys(tensors);
  const list = names.map((n) => tensors[n]!);
  const a = opts.archive ?? 'archive';
  const z = new ZipWriter(path);
  z.add(`${a}/data.pkl`, statePickle(names, list, opts.wrap ?? false, false));
  z.add(`${a}/byteorder`, Buffer.from('little'));
  list.forEach((t, i) => {
    const b = bytesOf(t);
    if (b.length !== t.shape.reduce((x, y) => x * y, 1) * SIZE[t.dtype]) throw new Error(`writeTorchZip: ${names[i]} data does not match its shape`);
    z.add(`${a}/data/${i}`, b);
  });
  z.add(`${a}/version`, Buffer.from('3\n'));
  z.close();
}

/** A zip holding one hand-made pickle as `archive/data.pkl` (plus optional storages). */
export function writePickleZip(path: string, pickle: Uint8Array, storages: Record<string, Uint8Array> = {}): void {
  const z = new ZipWriter(path);
  z.add('archive/data.pkl', pickle);
  for (const [k, b] of Object.entries(storages)) z.add(`archive/data/${k}`, b);
  z.close();
}

/** torch.save(..., _use_new_zipfile_serialization=False) of an OrderedDict of tensors. */
export function writeTorchLegacy(path: string, tensors: Record<string, RawTensor>): void {
  const names = Object.keys(tensors);
  const list = names.map((n) => tensors[n]!);
  const magic = Buffer.from([0x80, 2, 0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19, 0x2e]);
  const proto = Buffer.from([0x80, 2, 0x4d, 0xe9, 0x03, 0x2e]);
  const sys = Buffer.concat([op.proto(), op.emptyDict(), op.mark(), op.str('protocol_version'), op.int(1001), op.str('little_endian'), Buffer.from([0x88]),
    op.str('type_sizes'), op.emptyDict(), op.mark(), op.str('short'), op.int(2), op.str('int'), op.int(4), op.str('long'), op.int(4), op.setitems(), op.setitems(), op.stop()]);
  const keys = Buffer.concat([op.proto(), op.emptyList(), op.mark(), ...names.map((_, i) => op.str(String(i))), Buffer.from('e'), op.stop()]);
  const fd = fs.openSync(path, 'w');
  let pos = 0;
  const put = (b: Uint8Array): void => { fs.writeSync(fd, b, 0, b.length, pos); pos += b.length; };
  for (const b of [magic, proto, sys, statePickle(names, list, false, true), keys]) put(b);
  for (const t of list) {
    const n = Buffer.alloc(8);
    n.writeBigInt64LE(BigInt(t.shape.reduce((x, y) => x * y, 1)));
    put(n);
    put(bytesOf(t));
  }
  fs.closeSync(fd);
}
