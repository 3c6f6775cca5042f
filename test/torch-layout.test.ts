/**
 * torch.save files read weights-only (src/io/torch-checkpoint.ts, tensor-file.ts) on files assembled here:
 * the zip layout (`<archive>/data.pkl`, `<archive>/byteorder`, one stored member `<archive>/data/<key>` per
 * storage; persistent ids `('storage', torch.<T>Storage, key, location, numel)`, tensors by
 * `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, requires_grad, hooks)`) and the legacy layout
 * (pickled magic number 0x1950a86a20f9469cfc6c, protocol 1001, sys_info, the object, the storage key list, then
 * per storage an int64 element count and its bytes; persistent ids with a 6th `view` item). Expected bytes and
 * element orders are worked out by hand (row-major gather of strided views). Milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TorchCheckpointFile, intsOf } from '../src/io/torch-checkpoint.js';
import { inspectTensorFile, openTensorFile, tensorFileFormat } from '../src/io/tensor-file.js';
import { refused } from './refusals.js';
import { P, f32, u16, type Part } from './bytes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-torch-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const file = (ext = 'pt'): string => path.join(tmp, `t${seq++}.${ext}`);

const S = (s: string): Buffer => { const b = Buffer.from(s, 'utf8'); return P(0x58, i32(b.length), b); }; // BINUNICODE
const i32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
const I = (n: number): Buffer => P(0x4a, i32(n)); // BININT
const G = (m: string, n: string): Buffer => P(`c${m}\n${n}\n`);
const OD0 = P(G('collections', 'OrderedDict'), 0x29, 0x52); // OrderedDict()
const tup = (xs: number[]): Buffer => P(0x28, ...xs.map(I), 0x74);
const list = (xs: Buffer[]): Buffer => P(0x5d, 0x28, ...xs, 0x65);
const dict = (pairs: [Buffer, Buffer][], ordered = false): Buffer => P(ordered ? OD0 : 0x7d, 0x28, ...pairs.flat(), 0x75);
const pickle = (...body: Part[]): Buffer => P(0x80, 2, ...body, 0x2e);
/** A persistent id tuple (zip: 5 items; legacy: a 6th, the view, None). */
const pid = (key: string, cls: string, numel: number, legacy = false): Buffer => P(0x28, S('storage'), G('torch', cls), S(key), S('cpu'), I(numel), legacy ? 0x4e : [], 0x74, 0x51);
const tensor = (key: string, cls: string, numel: number, off: number, shape: number[], stride: number[], legacy = false): Buffer =>
  P(G('torch._utils', '_rebuild_tensor_v2'), 0x28, pid(key, cls, numel, legacy), I(off), tup(shape), tup(stride), 0x89, OD0, 0x74, 0x52);

/** A zip of stored members (method overridable), per APPNOTE: local headers + data, central directory, end record. */
function zip(p: string, members: [string, Buffer, number?][]): Record<string, number> {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  const dataAt: Record<string, number> = {};
  let pos = 0;
  for (const [name, data, method = 0] of members) {
    const n = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt16LE(method, 8);
    lh.writeUInt32LE(data.length, 18); lh.writeUInt32LE(data.length, 22); lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt16LE(method, 10);
    ch.writeUInt32LE(data.length, 20); ch.writeUInt32LE(data.length, 24); ch.writeUInt16LE(n.length, 28); ch.writeUInt32LE(pos, 42);
    central.push(ch, n);
    dataAt[name] = pos + 30 + n.length;
    parts.push(lh, n, data);
    pos += 30 + n.length + data.length;
  }
  const cd = Buffer.concat(central);
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0); e.writeUInt16LE(members.length, 8); e.writeUInt16LE(members.length, 10);
  e.writeUInt32LE(cd.length, 12); e.writeUInt32LE(pos, 16);
  fs.writeFileSync(p, Buffer.concat([...parts, cd, e]));
  return dataAt;
}
const openFds = (): number => (fs.existsSync('/proc/self/fd') ? fs.readdirSync('/proc/self/fd').length : -1);

test('zip layout: names, metadata, strided views gathered row-major, every integer dtype, rows', () => {
  const sd = dict([
    [S('a'), tensor('0', 'FloatStorage', 6, 0, [2, 3], [3, 1])],
    [S('at'), tensor('0', 'FloatStorage', 6, 0, [3, 2], [1, 3])],
    [S('h'), tensor('1', 'HalfStorage', 3, 1, [2], [1])],
    [S('one'), tensor('0', 'FloatStorage', 6, 0, [1, 3], [99, 1])],
    [S('col'), tensor('0', 'FloatStorage', 6, 0, [3, 1], [1, 7])],
    [S('e'), tensor('0', 'FloatStorage', 6, 0, [0, 2], [5, 7])],
    [S('s3'), tensor('0', 'FloatStorage', 6, 1, [2], [2])],
    [S('c3'), tensor('8', 'FloatStorage', 8, 0, [2, 2, 2], [1, 4, 2])],
    [S('z'), tensor('0', 'FloatStorage', 6, 5, [], [])],
    [S('i64'), tensor('2', 'LongStorage', 2, 0, [2], [1])],
    [S('i32'), tensor('3', 'IntStorage', 2, 0, [2], [1])],
    [S('i16'), tensor('4', 'ShortStorage', 2, 0, [2], [1])],
    [S('i8'), tensor('5', 'CharStorage', 2, 0, [2], [1])],
    [S('u8'), tensor('6', 'ByteStorage', 2, 0, [2], [1])],
    [S('b'), tensor('7', 'BoolStorage', 2, 0, [2], [1])],
    [S('step'), I(7)],
  ], true);
  const root = dict([
    [S('state_dict'), sd], [S('epoch'), I(3)], [S('name'), S('run')], [S('flag'), P(0x88)], [S('lr'), P(0x47, 0x3f, 0xe0, 0, 0, 0, 0, 0, 0)],
    [S('big'), P(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1)], [S('none'), P(0x4e)], [I(5), I(6)], [S('extra'), list([tensor('0', 'FloatStorage', 6, 2, [2], [1])])],
  ]);
  const p = file('ckpt');
  const i64 = Buffer.alloc(16); i64.writeBigInt64LE(5n, 0); i64.writeBigInt64LE(-7n, 8);
  const at = zip(p, [
    ['archive/data.pkl', pickle(root)], ['archive/byteorder', Buffer.from('little')], ['archive/data/0', f32(0, 1, 2, 3, 4, 5)],
    ['archive/data/1', u16(0x3c00, 0x4000, 0x4200)], ['archive/data/2', i64], ['archive/data/3', Buffer.from(new Int32Array([-1, 2]).buffer)],
    ['archive/data/4', Buffer.from(new Int16Array([-3, 4]).buffer)], ['archive/data/5', Buffer.from([0x80, 0x7f])], ['archive/data/6', Buffer.from([255, 0])],
    ['archive/data/7', Buffer.from([1, 0])], ['archive/data/8', f32(0, 1, 2, 3, 4, 5, 6, 7)], ['archive/version', Buffer.from('3\n')],
  ]);
  const f = TorchCheckpointFile.open(p);
  assert.equal(f.format, 'torch-zip');
  const names = ['a', 'at', 'h', 'one', 'col', 'e', 's3', 'c3', 'z', 'i64', 'i32', 'i16', 'i8', 'u8', 'b'];
  assert.deepEqual(f.entries.map((e) => e.name), [...names.map((n) => `state_dict/${n}`), 'extra/0']);
  assert.deepEqual([...f.tensors.keys()], names);
  assert.deepEqual(f.metadata, { epoch: '3', name: 'run', flag: 'true', lr: '0.5', big: '18446744073709551616', step: '7' });
  const d0 = at['archive/data/0']!;
  const info = (n: string): unknown => { const t = f.info(n); return [t.dtype, t.shape, t.stride, t.storageOffset, t.storageKey, t.contiguous, t.offset, t.byteLength, t.storageDataOffset]; };
  assert.deepEqual(info('a'), ['F32', [2, 3], [3, 1], 0, '0', true, d0, 24, d0]);
  assert.deepEqual(info('at'), ['F32', [3, 2], [1, 3], 0, '0', false, d0, 24, d0]);
  assert.deepEqual(info('h'), ['F16', [2], [1], 1, '1', true, at['archive/data/1']! + 2, 4, at['archive/data/1']]);
  assert.deepEqual(info('s3'), ['F32', [2], [2], 1, '0', false, d0 + 4, 8, d0]);
  assert.deepEqual(info('z'), ['F32', [], [], 5, '0', true, d0 + 20, 4, d0]);
  for (const n of ['one', 'col', 'e']) assert.equal(f.info(n).contiguous, true, n); // size-1 dims and empty tensors: any stride
  assert.equal(f.info('c3').contiguous, false);
  assert.equal(f.info('e').byteLength, 0);
  const v = (n: string): number[] => [...f.readFloat32(n).data];
  assert.deepEqual(v('a'), [0, 1, 2, 3, 4, 5]);
  assert.deepEqual(v('at'), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(v('h'), [2, 3]);
  assert.deepEqual(v('one'), [0, 1, 2]);
  assert.deepEqual(v('col'), [0, 1, 2]);
  assert.deepEqual(v('e'), []);
  assert.deepEqual(v('s3'), [1, 3]);
  assert.deepEqual(v('c3'), [0, 2, 4, 6, 1, 3, 5, 7]);
  assert.deepEqual(v('z'), [5]);
  assert.deepEqual(f.readFloat32('at').shape, [3, 2]);
  assert.deepEqual(f.readBytes('s3'), f32(1, 3));
  assert.deepEqual([...f.bytesOf(f.entries.at(-1)!)], [...f32(2, 3)]);
  assert.deepEqual(f.readRows('at', 1, 2), { shape: [2, 2], data: new Float32Array([1, 4, 2, 5]) });
  assert.deepEqual(f.readRows('at', 0, 1), { shape: [1, 2], data: new Float32Array([0, 3]) });
  assert.deepEqual(f.readRows('c3', 1, 1), { shape: [1, 2, 2], data: new Float32Array([1, 3, 5, 7]) });
  assert.deepEqual(f.readRows('at', 3, 0), { shape: [0, 2], data: new Float32Array(0) });
  for (const [s, c, shown] of [[-1, 1, '[-1, 0)'], [0, -1, '[0, -1)'], [2, 2, '[2, 4)'], [4, 0, '[4, 4)']] as const) {
    refused(() => f.readRows('at', s, c), `${p} [at]: rows ${shown} outside [0, 3)`);
  }
  assert.deepEqual(f.readInts('i64'), { shape: [2], data: [5, -7] });
  assert.deepEqual(f.readInts('i32').data, [-1, 2]);
  assert.deepEqual(f.readInts('i16').data, [-3, 4]);
  assert.deepEqual(f.readInts('i8').data, [-128, 127]);
  assert.deepEqual(f.readInts('u8').data, [255, 0]);
  assert.deepEqual(f.readInts('b').data, [1, 0]);
  refused(() => f.readInts('a'), `${p} [a]: expected an integer tensor, got dtype F32`);
  refused(() => f.readFloat32('i8'), `${p} [i8]: expected a floating-point tensor (F32, F16, BF16, F64), got I8`);
  assert.deepEqual(intsOf(Buffer.alloc(0), 'F16', 'x', 'k'), []); // nothing to convert, nothing refused
  refused(() => intsOf(Buffer.alloc(2), 'F16', 'x', 'k'), 'x [k]: expected an integer tensor, got dtype F16');
  refused(() => f.info('nope'), `${p} [nope]: no such tensor`);
  assert.equal(f.has('a'), true);
  assert.equal(f.has('state_dict/a'), false);
  const fds = openFds();
  f.close();
  if (fds >= 0) assert.equal(openFds(), fds - 1);
  f.close();
  for (const n of ['a', 'at']) refused(() => f.readBytes(n), `${p} [${n}]: file already closed`);
  // inspect: '/' paths, and the file is closed again.
  const before = openFds();
  assert.deepEqual(inspectTensorFile(p).slice(0, 3), [{ name: 'state_dict/a', dtype: 'F32', shape: [2, 3] }, { name: 'state_dict/at', dtype: 'F32', shape: [3, 2] }, { name: 'state_dict/h', dtype: 'F16', shape: [2] }]);
  if (before >= 0) assert.equal(openFds(), before);
});

test('names: state_dict unwrapped (twice), keys of every hashable kind, clashes and nesting refused', () => {
  const st = (k: string): [string, Buffer, number?] => [`archive/data/${k}`, f32(1, 2)];
  const open = (root: Buffer, storages = ['0']): TorchCheckpointFile => {
    const p = file();
    zip(p, [['archive/data.pkl', pickle(root)], ...storages.map(st)]);
    return TorchCheckpointFile.open(p);
  };
  const t = tensor('0', 'FloatStorage', 2, 0, [2], [1]);
  const twice = open(dict([[S('state_dict'), dict([[S('state_dict'), dict([[S('w'), t]])], [S('epoch'), I(1)]])]]));
  assert.deepEqual([...twice.tensors.keys()], ['w']);
  assert.deepEqual(twice.entries.map((e) => e.name), ['state_dict/state_dict/w']);
  twice.close();
  const notDict = open(dict([[S('state_dict'), list([t])], [S('n'), I(2)]]));
  assert.deepEqual([...notDict.tensors.keys()], ['state_dict.0']);
  assert.deepEqual(notDict.metadata, { n: '2' });
  notDict.close();
  // Nested dicts joined with '.', keys of any hashable kind by their Python spelling.
  const keys = open(dict([[S('m'), dict([[I(3), t], [P(0x88), t], [P(0x4e), t], [P(I(1), S('x'), 0x86), t], [P(0x43, 1, 0x41), t], [P(0x8a, 9, 0, 0, 0, 0, 0, 0, 0, 0, 1), t], [P(0x89), t]])]]));
  assert.deepEqual([...keys.tensors.keys()], ['m.3', 'm.True', 'm.None', 'm.(1, x)', 'm.bytes', 'm.18446744073709551616', 'm.False']);
  assert.deepEqual(keys.metadata, {});
  keys.close();
  // A root that is a tensor, a list or a tuple.
  const bare = open(t);
  assert.deepEqual([...bare.tensors.keys()], ['']);
  bare.close();
  const tupled = open(P(t, t, 0x86));
  assert.deepEqual(tupled.entries.map((e) => e.name), ['0', '1']);
  tupled.close();
  const p = file();
  zip(p, [['archive/data.pkl', pickle(dict([[S('a.b'), t], [S('a'), dict([[S('b'), t]])]]))], st('0')]);
  refused(() => TorchCheckpointFile.open(p), `${p} [a.b]: two tensors in the checkpoint flatten to the same name`);
  // 64 levels of lists are walked, 65 are refused.
  const nest = (n: number): Buffer => P('('.repeat(n), 0x4e, 'l'.repeat(n));
  open(nest(64)).close();
  const deep = file();
  zip(deep, [['archive/data.pkl', pickle(nest(65))]]);
  refused(() => TorchCheckpointFile.open(deep), `${deep}: refused: the pickled object nests deeper than 64 levels (or refers to itself)`);
});

test('zip archives: the data.pkl member, byteorder, storage members and their sizes', () => {
  const t = (key = '0', cls = 'FloatStorage', n = 4): Buffer => tensor(key, cls, n, 0, [n], [1]);
  const ok = (members: [string, Buffer, number?][]): string[] => { const p = file(); zip(p, members); const f = TorchCheckpointFile.open(p); const k = [...f.tensors.keys()]; f.close(); return k; };
  const no = (members: [string, Buffer, number?][], detail: string, key?: string): void => {
    const p = file(); zip(p, members);
    refused(() => TorchCheckpointFile.open(p), `${p}${key ? ` [${key}]` : ''}: ${detail}`);
  };
  const pkl = pickle(dict([[S('w'), t()]]));
  const d16 = Buffer.alloc(16);
  // Any archive name, or none (data.pkl at the root: storages under data/).
  assert.deepEqual(ok([['my_model/data.pkl', pkl], ['my_model/data/0', d16]]), ['w']);
  assert.deepEqual(ok([['data.pkl', pkl], ['data/0', d16]]), ['w']);
  assert.deepEqual(ok([['a/data.pkl', pkl], ['a/data/0', d16], ['a/b/data.pkl', pkl], ['xdata.pkl', pkl], ['a/data.pklx', pkl], ['/data.pkl', pkl]]), ['w']);
  no([['a/data.pkl', pkl], ['b/data.pkl', pkl], ['a/data/0', d16]], 'not a torch checkpoint: expected one <archive>/data.pkl member, found 2 (members: a/data.pkl, b/data.pkl, a/data/0)');
  no([['m1', d16], ['m2', d16], ['m3', d16], ['m4', d16], ['m5', d16], ['m6', d16]], 'not a torch checkpoint: expected one <archive>/data.pkl member, found 0 (members: m1, m2, m3, m4, m5)');
  no([['archive/data.pkl', pkl, 8], ['archive/data/0', d16]], 'member archive/data.pkl is compressed (method 8); torch.save stores members uncompressed');
  // byteorder: 'little' (a newline around it is fine), anything else refused; a record over 16 bytes is not one.
  assert.deepEqual(ok([['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from('little\n')], ['archive/data/0', d16]]), ['w']);
  no([['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from('big')], ['archive/data/0', d16]], 'storages are big-endian; only little-endian checkpoints are supported', 'archive/byteorder');
  no([['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from(`big${' '.repeat(13)}`)], ['archive/data/0', d16]], 'storages are big-endian; only little-endian checkpoints are supported', 'archive/byteorder');
  assert.deepEqual(ok([['archive/data.pkl', pkl], ['archive/byteorder', Buffer.from(`big${' '.repeat(14)}`)], ['archive/data/0', d16]]), ['w']);
  no([['x/data.pkl', pkl], ['x/byteorder', Buffer.from('')], ['x/data/0', d16]], 'storages are -endian; only little-endian checkpoints are supported', 'x/byteorder');
  // Storage members.
  no([['archive/data.pkl', pkl]], "storage '0' has no member archive/data/0 (truncated archive?)");
  no([['archive/data.pkl', pkl], ['archive/data/0', d16, 8]], 'member archive/data/0 is compressed (method 8); torch.save stores members uncompressed');
  no([['archive/data.pkl', pkl], ['archive/data/0', Buffer.alloc(15)]], "storage '0' claims 4 x F32 (16 bytes) but its member holds 15 bytes");
  // Two views of one storage in other dtypes: each must fit the member.
  const views = (cls: string, n: number): Buffer => pickle(dict([[S('w'), t()], [S('v'), t('0', cls, n)]]));
  assert.deepEqual(ok([['archive/data.pkl', views('ByteStorage', 16)], ['archive/data/0', d16]]), ['w', 'v']);
  assert.deepEqual(ok([['archive/data.pkl', views('DoubleStorage', 2)], ['archive/data/0', d16]]), ['w', 'v']);
  no([['archive/data.pkl', views('DoubleStorage', 3)], ['archive/data/0', d16]], "storage '0' claims 3 x F64 (24 bytes) but its member holds 16 bytes");
  no([['archive/data.pkl', Buffer.concat([pkl, Buffer.from('xy')])], ['archive/data/0', d16]], 'refused pickle in archive/data.pkl: 2 bytes after its STOP opcode');
  no([['archive/data.pkl', pickle(P(0x4b, 1, 0x51))]], "refused pickle: persistent id is a number, not a 5-tuple ('storage', type, key, location, size)");
});

test('persistent ids: the storage tuple is checked item by item (zip and legacy forms)', () => {
  const raw = (items: Buffer[]): Buffer => pickle(P(0x28, ...items, 0x74, 0x51));
  const good = (over: Partial<Record<'tag' | 'type' | 'key' | 'loc' | 'n', Buffer>> = {}): Buffer[] =>
    [over.tag ?? S('storage'), over.type ?? G('torch', 'FloatStorage'), over.key ?? S('0'), over.loc ?? S('cpu'), over.n ?? I(4)];
  const no = (items: Buffer[], detail: string): void => {
    const p = file();
    zip(p, [['archive/data.pkl', raw(items)], ['archive/data/0', Buffer.alloc(16)]]);
    refused(() => TorchCheckpointFile.open(p), `${p}: refused pickle: persistent id ${detail}`);
  };
  const five = "('storage', type, key, location, size)";
  no(good().slice(0, 4), `is a tuple of 4 items, not a 5-tuple ${five}`);
  no([...good(), P(0x4e)], `is a tuple of 6 items, not a 5-tuple ${five}`);
  no(good({ tag: S('storag') }), 'tag "storag" (expected \'storage\')');
  no(good({ tag: I(5) }), 'tag "number" (expected \'storage\')');
  no(good({ type: S('FloatStorage') }), 'storage type is a string');
  no(good({ type: G('torch', 'Size') }), 'storage type is a global torch.Size');
  no(good({ key: S('a/b') }), 'storage key "a/b" is not a short name');
  no(good({ key: S('') }), 'storage key "" is not a short name');
  no(good({ key: S('k'.repeat(65)) }), `storage key "${'k'.repeat(65)}" is not a short name`);
  no(good({ key: S(`x${'k'.repeat(99)}`) }), `storage key "x${'k'.repeat(79)}" is not a short name`);
  no(good({ key: S('0\n') }), 'storage key "0\\n" is not a short name');
  no(good({ key: S('\n0') }), 'storage key "\\n0" is not a short name');
  no(good({ key: I(0) }), 'storage key number is not a short name');
  no(good({ loc: P(0x4e) }), 'location is a None');
  no(good({ n: I(-1) }), 'storage size -1 is not a non-negative integer');
  no(good({ n: P(0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0) }), 'storage size 1.5 is not a non-negative integer');
  no(good({ n: S('4') }), 'storage size 4 is not a non-negative integer');
  // Every character class of a short name, 64 characters.
  const key = `aZ09_.-${'k'.repeat(57)}`;
  const p = file();
  zip(p, [['archive/data.pkl', pickle(tensor(key, 'FloatStorage', 1, 0, [1], [1]))], [`archive/data/${key}`, f32(9)]]);
  const f = TorchCheckpointFile.open(p);
  assert.deepEqual([...f.readFloat32('').data], [9]);
  f.close();
  // Storage classes: bytes of UntypedStorage are U8.
  const u = file();
  zip(u, [['archive/data.pkl', pickle(tensor('0', 'UntypedStorage', 2, 0, [2], [1]))], ['archive/data/0', Buffer.from([7, 8])]]);
  const uf = TorchCheckpointFile.open(u);
  assert.equal(uf.info('').dtype, 'U8');
  uf.close();
});

/** A legacy torch.save file. */
function legacy(parts: { magic?: Buffer; protocol?: Buffer; sys?: Buffer; obj: Buffer; keys: Buffer; data: Buffer[] }): string {
  const p = file();
  const magic = parts.magic ?? pickle(P(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19));
  const protocol = parts.protocol ?? pickle(P(0x4d, 0xe9, 0x03));
  const sys = parts.sys ?? pickle(dict([[S('protocol_version'), I(1001)], [S('little_endian'), P(0x88)]]));
  fs.writeFileSync(p, Buffer.concat([magic, protocol, sys, parts.obj, parts.keys, ...parts.data]));
  return p;
}
const storageBytes = (n: bigint, bytes: Buffer): Buffer => { const h = Buffer.alloc(8); h.writeBigInt64LE(n); return Buffer.concat([h, bytes]); };
const keyList = (...k: string[]): Buffer => pickle(list(k.map(S)));

test('legacy layout: magic, protocol, sys_info, key list, then each storage as int64 count + bytes', () => {
  const lt = (key: string, cls: string, n: number, off = 0, shape = [n], stride = [1]): Buffer => tensor(key, cls, n, off, shape, stride, true);
  const obj = pickle(dict([[S('w'), lt('0', 'FloatStorage', 2)], [S('t'), lt('1', 'FloatStorage', 4, 0, [2, 2], [1, 2])], [S('v'), lt('0', 'FloatStorage', 2, 1, [1])]], true));
  const good = { obj, keys: keyList('0', '1'), data: [storageBytes(2n, f32(1, 2)), storageBytes(4n, f32(1, 2, 3, 4))] };
  const p = legacy(good);
  const f = openTensorFile(p);
  assert.equal(f.format, 'torch-legacy');
  assert.deepEqual([...f.tensors.keys()], ['w', 't', 'v']);
  const head = fs.statSync(p).size - 8 - 8 - 8 - 16;
  assert.equal(f.info('w').offset, head + 8);
  assert.equal(f.info('t').offset, head + 8 + 8 + 8);
  assert.deepEqual([...f.readFloat32('w').data], [1, 2]);
  assert.deepEqual([...f.readFloat32('t').data], [1, 3, 2, 4]);
  assert.deepEqual([...f.readFloat32('v').data], [2]);
  f.close();
  const no = (parts: Partial<typeof good> & { magic?: Buffer; protocol?: Buffer; sys?: Buffer }, detail: string): void => {
    const q = legacy({ ...good, ...parts });
    refused(() => openTensorFile(q), `${q}: ${detail}`);
  };
  const nt = (m: string): string => `not a torch checkpoint (legacy format): ${m}`;
  no({ magic: pickle(P(0x8a, 10, 0x6d, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19)) }, nt('wrong magic number'));
  no({ magic: pickle(I(1)) }, nt('wrong magic number'));
  no({ protocol: pickle(P(0x4d, 0xe8, 0x03)) }, nt('protocol version 1000 (expected 1001)'));
  no({ sys: pickle(dict([[S('little_endian'), P(0x89)]])) }, nt('the storages are big-endian'));
  no({ sys: pickle(dict([[S('big_endian'), P(0x88)]])) }, nt('sys_info has no little_endian entry'));
  no({ sys: pickle(dict([[S('little_endian'), I(1)]])) }, nt('sys_info has no little_endian entry'));
  no({ sys: pickle(list([])) }, nt('sys_info has no little_endian entry'));
  no({ keys: pickle(dict([])) }, nt('the storage key list is a dict, not a list of strings'));
  no({ keys: pickle(list([S('0'), I(1)])) }, nt('the storage key list is a list, not a list of strings'));
  no({ keys: keyList('0') }, nt('the storage key list (1 keys) does not match the 2 storages the object pickle uses'));
  no({ keys: keyList('0', '1', '2') }, nt('the storage key list (3 keys) does not match the 2 storages the object pickle uses'));
  no({ keys: keyList('0', '2') }, nt('the storage key list (2 keys) does not match the 2 storages the object pickle uses'));
  no({ keys: keyList('0', '0') }, nt("storage '0' is listed twice"));
  no({ data: [storageBytes(2n, f32(1, 2))] }, `file ends at byte ${fs.statSync(p).size - 24} before storage '1' (truncated)`);
  no({ data: [storageBytes(2n, f32(1, 2)), Buffer.alloc(7)] }, `file ends at byte ${fs.statSync(p).size - 17} before storage '1' (truncated)`);
  no({ data: [storageBytes(3n, f32(1, 2, 3)), storageBytes(4n, f32(1, 2, 3, 4))] }, "storage '0' has 3 elements in the file but 2 in the pickle");
  no({ data: [storageBytes(2n, f32(1, 2)), storageBytes(4n, f32(1, 2, 3))] }, `storage '1' (16 bytes at byte ${head + 24}) runs past the end of the ${fs.statSync(p).size - 4}-byte file (truncated)`);
  // One storage referenced as two dtypes or sizes.
  const twice = pickle(dict([[S('w'), lt('0', 'FloatStorage', 2)], [S('d'), lt('0', 'DoubleStorage', 1)]]));
  no({ obj: twice, keys: keyList('0'), data: [storageBytes(2n, f32(1, 2))] }, "storage '0' is referenced as 2 x F32 and as 1 x F64");
  const sizes = pickle(dict([[S('w'), lt('0', 'FloatStorage', 2)], [S('d'), lt('0', 'FloatStorage', 3, 0, [1])]]));
  no({ obj: sizes, keys: keyList('0'), data: [storageBytes(2n, f32(1, 2))] }, "storage '0' is referenced as 2 x F32 and as 3 x F32");
  // Legacy persistent ids have six items, the last (a view) None.
  const five = pickle(tensor('0', 'FloatStorage', 2, 0, [2], [1], false));
  no({ obj: five, keys: keyList('0'), data: [storageBytes(2n, f32(1, 2))] }, "refused pickle: persistent id is a tuple of 5 items, not a 6-tuple ('storage', type, key, location, size, view)");
  const view = pickle(P(G('torch._utils', '_rebuild_tensor'), 0x28, P(0x28, S('storage'), G('torch', 'FloatStorage'), S('0'), S('cpu'), I(2), tup([0, 1, 2]), 0x74, 0x51), I(0), tup([2]), tup([1]), 0x74, 0x52));
  no({ obj: view, keys: keyList('0'), data: [storageBytes(2n, f32(1, 2))] }, 'refused pickle: persistent id is a storage view (pre-1.0 torch files), which is not supported');
});

test('legacy pickles longer than the first 1 MiB read are decoded from a longer prefix; a cut file stays refused', () => {
  const long = 'x'.repeat(1_500_000);
  const obj = pickle(dict([[S('note'), S(long)], [S('w'), tensor('0', 'FloatStorage', 1, 0, [1], [1], true)]]));
  const p = legacy({ obj, keys: keyList('0'), data: [storageBytes(1n, f32(4))] });
  const f = openTensorFile(p);
  assert.deepEqual([...f.readFloat32('w').data], [4]);
  assert.equal(f.metadata.note!.length, long.length);
  f.close();
  const cut = file();
  fs.writeFileSync(cut, fs.readFileSync(p).subarray(0, 1_200_000));
  const at = fs.readFileSync(p).indexOf(Buffer.from('note')) + 4 + 5; // the long string's first byte (after its BINUNICODE opcode and length)
  refused(() => openTensorFile(cut), `${cut}: refused pickle in the object pickle: BINUNICODE string of 1500000 bytes at byte ${at} runs past the end of the data (${1_200_000 - at} bytes left; truncated or oversized length)`);
});

test('format by content: safetensors (9th byte "{"), zip ("PK"), pickle (0x80 + protocol 2-5); short and foreign files refused', () => {
  const w = (b: Buffer | string): string => { const p = file('bin'); fs.writeFileSync(p, b); return p; };
  assert.equal(tensorFileFormat(w(Buffer.from('PK\x03\x04\x00\x00\x00\x00{', 'latin1'))), 'safetensors');
  assert.equal(tensorFileFormat(w(Buffer.from([0x80, 2, 0, 0, 0, 0, 0, 0, 0x7b]))), 'safetensors');
  assert.equal(tensorFileFormat(w(Buffer.from('PK\x03\x04\x00\x00\x00\x00\x00', 'latin1'))), 'torch-zip');
  assert.equal(tensorFileFormat(w('PK')), 'torch-zip');
  for (const proto of [2, 3, 4, 5]) assert.equal(tensorFileFormat(w(Buffer.from([0x80, proto, 0x8a]))), 'torch-legacy');
  const msg = (p: string, hex: string): string => `${p}: not a safetensors file or torch checkpoint (first bytes ${hex})`;
  for (const [b, hex] of [[Buffer.from([0x80, 1, 0x8a]), '80018a'], [Buffer.from([0x80, 6]), '8006'], [Buffer.from('P'), '50'], [Buffer.from('PZ'), '505a'],
    [Buffer.from('QK'), '514b'], [Buffer.alloc(0), ''], [Buffer.from([0x80]), '80'], [Buffer.from('0123456789'), '303132333435363738']] as const) {
    const p = w(b);
    refused(() => tensorFileFormat(p), msg(p, hex));
    refused(() => openTensorFile(p), msg(p, hex));
  }
  const missing = path.join(tmp, 'missing.pt');
  refused(() => tensorFileFormat(missing), `${missing}: cannot open: ENOENT`);
  // TorchCheckpointFile.open by its own first bytes (it is also reached directly).
  const fds = openFds();
  for (const b of [Buffer.alloc(0), Buffer.from([0x80]), Buffer.from('P'), Buffer.from('hello')]) {
    const p = w(b);
    refused(() => TorchCheckpointFile.open(p), `${p}: not a torch checkpoint (neither a zip archive nor a pickle)`);
  }
  const pk = w('PK');
  refused(() => TorchCheckpointFile.open(pk), `${pk}: not a readable torch zip checkpoint: 2 bytes is too short for a zip file (truncated?)`);
  const p80 = w(Buffer.from([0x80, 2]));
  refused(() => TorchCheckpointFile.open(p80), `${p80}: refused pickle in the magic number: the data ends at byte 2 without a STOP opcode (truncated)`);
  if (fds >= 0) assert.equal(openFds(), fds, 'every refused file is closed');
  // Safetensors through openTensorFile / inspectTensorFile.
  const st = file('safetensors');
  const h = Buffer.from(JSON.stringify({ w: { dtype: 'BF16', shape: [1, 2], data_offsets: [0, 4] } }));
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(st, Buffer.concat([len, h, Buffer.alloc(4)]));
  const sf = openTensorFile(st);
  assert.equal(sf.format, 'safetensors');
  sf.close();
  assert.deepEqual(inspectTensorFile(st), [{ name: 'w', dtype: 'BF16', shape: [1, 2] }]);
});
