/**
 * Edges of the weights formats that the byte-level files (safetensors-header, zip-directory, pickle-opcodes,
 * torch-layout, weights-source) leave open: dict keys that would collide if their canonical forms were spelled
 * carelessly, lengths that end exactly at the end of the data, files that shrink after they were opened, a
 * data.pkl over the 512 MiB limit (sparse file), legacy pickles' messages, and weight sources' quieter paths
 * (no mirror for integers, a temp folder that cannot be made). Expectations from the pickle protocol
 * (pickletools), APPNOTE and torch's layouts, as in those files. Milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { f32Mirror, setWeightMirrorFolder } from '../src/io/f32-mirror.js';
import { makeTensor, PyDict, PyStorage, PyTuple, unpickle } from '../src/io/pickle.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { openTensorFile, tensorFileFormat, TensorFileSource } from '../src/io/tensor-file.js';
import { TorchCheckpointFile } from '../src/io/torch-checkpoint.js';
import { openSharded, SafetensorsSource, WeightsView, type TensorSource } from '../src/io/weights.js';
import { refused } from './refusals.js';
import { P, type Part } from './bytes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-edges-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;
const file = (ext = 'pt'): string => path.join(tmp, `e${seq++}.${ext}`);

const i32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
const S = (s: string): Buffer => { const b = Buffer.from(s, 'utf8'); return P(0x58, i32(b.length), b); };
const I = (n: number): Buffer => P(0x4a, i32(n));
const G = (m: string, n: string): Buffer => P(`c${m}\n${n}\n`);
const OD0 = P(G('collections', 'OrderedDict'), 0x29, 0x52);
const tup = (xs: number[]): Buffer => P(0x28, ...xs.map(I), 0x74);
const dict = (pairs: [Buffer, Buffer][]): Buffer => P(0x7d, 0x28, ...pairs.flat(), 0x75);
const pickle = (...body: Part[]): Buffer => P(0x80, 2, ...body, 0x2e);
const tensor = (key: string, cls: string, numel: number, shape: number[], stride: number[], legacy = false): Buffer =>
  P(G('torch._utils', '_rebuild_tensor_v2'), 0x28, P(0x28, S('storage'), G('torch', cls), S(key), S('cpu'), I(numel), legacy ? 0x4e : [], 0x74, 0x51),
    I(0), tup(shape), tup(stride), 0x89, OD0, 0x74, 0x52);
const F = 'f.pt';
/** A zip of stored members: [name, data, declared size (default: the data's)]; the file may be extended sparsely. */
function zip(p: string, members: [string, Buffer, number?][]): void {
  const fd = fs.openSync(p, 'w');
  const central: Buffer[] = [];
  let pos = 0;
  for (const [name, data, size = data.length] of members) {
    const n = Buffer.from(name);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(0x04034b50, 0); lh.writeUInt32LE(size, 18); lh.writeUInt32LE(size, 22); lh.writeUInt16LE(n.length, 26);
    const ch = Buffer.alloc(46);
    ch.writeUInt32LE(0x02014b50, 0); ch.writeUInt32LE(size, 20); ch.writeUInt32LE(size, 24); ch.writeUInt16LE(n.length, 28); ch.writeUInt32LE(pos, 42);
    central.push(ch, n);
    fs.writeSync(fd, Buffer.concat([lh, n, data]), 0, 30 + n.length + data.length, pos);
    pos += 30 + n.length + size;
  }
  const cd = Buffer.concat(central);
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0); e.writeUInt16LE(members.length, 8); e.writeUInt16LE(members.length, 10);
  e.writeUInt32LE(cd.length, 12); e.writeUInt32LE(pos, 16);
  fs.writeSync(fd, Buffer.concat([cd, e]), 0, cd.length + 22, pos);
  fs.closeSync(fd);
}

test('pickle: dict keys stay apart exactly when Python\'s do; lengths ending at the end of the data; messages', () => {
  const keys = (...pairs: Buffer[]): PyDict => unpickle(pickle(0x7d, 0x28, ...pairs, 0x75), { file: F }).value as PyDict;
  // () and (None,); b'sA' and 'A'; ('a', 'b') and ('asb',): different keys in Python, so two entries each.
  assert.equal(keys(P(0x29), S('x'), P(0x4e, 0x85), S('y')).entries.size, 2);
  assert.equal(keys(P(0x43, 2, 's', 'A'), S('x'), S('A'), S('y')).entries.size, 2);
  assert.equal(keys(P(S('a'), S('b'), 0x86), S('x'), P(S('asb'), 0x85), S('y')).entries.size, 2);
  assert.equal(keys(P(0x29), S('x'), P(0x29), S('y')).entries.size, 1);
  assert.equal(keys(P(0x29), S('x'), P(0x43, 1, 'q', 0x85), S('y')).entries.size, 2); // () and (b'q',)
  // A BINUNICODE8 string ending exactly at the end of the data is read (then the missing STOP is reported).
  assert.throws(() => unpickle(P(0x80, 4, 0x8d, u64(1n), 'z'), { file: F }), { message: `${F}: refused pickle: the data ends at byte 12 without a STOP opcode (truncated)` });
  assert.throws(() => unpickle(P(0x80, 2, 0x8a, 5, 1, 2), { file: F }), { message: `${F}: refused pickle: LONG1 of 5 bytes at byte 4 runs past the end of the data (2 bytes left; truncated or oversized length)` });
  assert.throws(() => unpickle(P(0x80, 2, 0x8b, i32(5), 1), { file: F }), { message: `${F}: refused pickle: LONG4 of 5 bytes at byte 7 runs past the end of the data (1 bytes left; truncated or oversized length)` });
  assert.equal(unpickle(pickle(0x54, i32(0)), { file: F }).value, ''); // an empty BINSTRING is not a negative length
  const st = new PyStorage('k', 'F32', 4, { offset: 0, nbytes: 16 });
  const fail = (m: string): never => { throw new FileFormatError(F, m); };
  refused(() => makeTensor(st, 0, new PyTuple([2]), new PyTuple([1, 2]), fail), `${F}: tensor size [2] and stride [1, 2] differ in length`);
  refused(() => makeTensor(st, 0, new PyTuple([2, 2, 2]), new PyTuple([4, 2]), fail), `${F}: tensor size [2, 2, 2] and stride [4, 2] differ in length`);
});

test('torch files: two-byte heads, reads from a file that shrank after it was opened, a data.pkl over 512 MiB', () => {
  for (const head of ['PZ', 'QK', 'xK']) {
    const p = file();
    fs.writeFileSync(p, head);
    refused(() => TorchCheckpointFile.open(p), `${p}: not a torch checkpoint (neither a zip archive nor a pickle)`);
  }
  const p = file();
  const root = dict([[S('a'), tensor('0', 'FloatStorage', 6, [6], [1])], [S('t'), tensor('0', 'FloatStorage', 6, [3, 2], [1, 3])]]);
  zip(p, [['archive/data.pkl', pickle(root)], ['archive/data/0', Buffer.from(new Float32Array([0, 1, 2, 3, 4, 5]).buffer)]]);
  const f = TorchCheckpointFile.open(p);
  const end = f.info('a').offset;
  fs.truncateSync(p, end + 4);
  refused(() => f.readBytes('a'), `${p}: file ended at byte ${end + 4} while reading tensor a (truncated)`);
  refused(() => f.readBytes('t'), `${p}: file ended at byte ${end + 4} while reading tensor t (truncated)`);
  f.close();
  // The pickle member is judged by its declared size before anything is read (the file is sparse).
  const big = file();
  zip(big, [['archive/data.pkl', Buffer.alloc(0), 2 ** 29 + 1]]);
  refused(() => TorchCheckpointFile.open(big), `${big}: refused: archive/data.pkl is ${2 ** 29 + 1} bytes (at most ${2 ** 29})`);
  fs.rmSync(big);
});

test('legacy files: which pickle a refusal is in, dtypes of one storage, an empty last storage at the very end', () => {
  const magic = pickle(P(0x8a, 10, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19));
  const protocol = pickle(P(0x4d, 0xe9, 0x03));
  const sys = pickle(dict([[S('little_endian'), P(0x88)]]));
  const count = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigInt64LE(n); return b; };
  const legacy = (parts: Buffer[]): string => { const p = file(); fs.writeFileSync(p, Buffer.concat(parts)); return p; };
  const obj = pickle(dict([[S('w'), tensor('0', 'FloatStorage', 1, [1], [1], true)]]));
  const keys = pickle(P(0x5d, 0x28, S('0'), 0x65));
  const bad = pickle(0xff);
  const cases: [Buffer[], string, number][] = [
    [[magic, bad], 'the protocol version', magic.length],
    [[magic, protocol, bad], 'sys_info', magic.length + protocol.length],
    [[magic, protocol, sys, obj, bad], 'the storage key list', magic.length + protocol.length + sys.length + obj.length],
  ];
  for (const [parts, where, at] of cases) {
    const p = legacy(parts);
    refused(() => openTensorFile(p), `${p}: refused pickle in ${where}: opcode 0xff at byte ${at + 2} is not allowed in a weights-only checkpoint`);
  }
  // One storage as F32 x 2 and as I32 x 2: the same count, another dtype, refused.
  const two = pickle(dict([[S('w'), tensor('0', 'FloatStorage', 2, [2], [1], true)], [S('i'), tensor('0', 'IntStorage', 2, [2], [1], true)]]));
  const p = legacy([magic, protocol, sys, two, keys, count(2n), Buffer.alloc(8)]);
  refused(() => openTensorFile(p), `${p}: storage '0' is referenced as 2 x F32 and as 2 x I32`);
  // A storage of no elements, last in the file: its count ends exactly at the end.
  const empty = pickle(dict([[S('w'), tensor('0', 'FloatStorage', 1, [1], [1], true)], [S('e'), tensor('1', 'FloatStorage', 0, [0], [1], true)]]));
  const q = legacy([magic, protocol, sys, empty, pickle(P(0x5d, 0x28, S('0'), S('1'), 0x65)), count(1n), Buffer.from(new Float32Array([7]).buffer), count(0n)]);
  const f = openTensorFile(q);
  assert.deepEqual([...f.readFloat32('w').data], [7]);
  assert.deepEqual(f.readFloat32('e'), { shape: [0], data: new Float32Array(0) });
  f.close();
});

test('format by the first bytes: a two-byte pickle head is a pickle, a protocol byte after another first byte is not', () => {
  const p = file();
  fs.writeFileSync(p, Buffer.from([0x80, 0x02]));
  assert.equal(tensorFileFormat(p), 'torch-legacy');
  for (const b of [[0x41, 0x02], [0x7f, 0x03, 0x8a]]) {
    fs.writeFileSync(p, Buffer.from(b));
    refused(() => tensorFileFormat(p), `${p}: not a safetensors file or torch checkpoint (first bytes ${Buffer.from(b).toString('hex')})`);
  }
});

test('weight sources: no mirror for integers, shape checks by length, sources without locations, strided views', () => {
  const st = (tensors: Record<string, [string, number[], Buffer]>): string => {
    const header: Record<string, unknown> = {};
    let off = 0;
    for (const [k, [dtype, shape, b]] of Object.entries(tensors)) { header[k] = { dtype, shape, data_offsets: [off, off + b.length] }; off += b.length; }
    const h = Buffer.from(JSON.stringify(header));
    const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(h.length));
    const p = file('safetensors');
    fs.writeFileSync(p, Buffer.concat([len, h, ...Object.values(tensors).map((t) => t[2])]));
    return p;
  };
  const p = st({ i: ['I64', [1], Buffer.alloc(8)], w: ['F32', [2, 2], Buffer.alloc(16)] });
  const folder = path.join(tmp, `mirror${seq++}`);
  setWeightMirrorFolder(folder);
  try {
    const src = new SafetensorsSource(p, [SafetensorsFile.open(p)]);
    assert.equal(src.location('i'), undefined);
    assert.equal(fs.existsSync(folder), false, 'no mirror is made for an integer tensor');
  } finally {
    setWeightMirrorFolder(undefined);
  }
  const vb = new WeightsView(new SafetensorsSource('org', [SafetensorsFile.open(p)]));
  refused(() => vb.get('w', [2]), 'org [w]: weight has shape [2, 2] but the config expects [2]');
  refused(() => vb.get('w', [null]), 'org [w]: weight has shape [2, 2] but the config expects [?]');
  const bare: TensorSource = { origin: 'bare', keys: () => ['k'], has: (k) => k === 'k', shape: () => [1], read: () => ({ shape: [1], data: new Float32Array(1) }) };
  refused(() => new WeightsView(bare).shape('zz'), 'bare [zz]: missing weight');
  refused(() => new WeightsView(bare).get('zz'), 'bare [zz]: missing weight');
  // A strided (transposed) F32 view of a torch file has no location: its bytes are not laid out as the tensor.
  const z = file();
  const pkl = pickle(dict([[S('t'), tensor('0', 'FloatStorage', 4, [2, 2], [1, 2])], [S('c'), tensor('0', 'FloatStorage', 4, [2, 2], [2, 1])]]));
  const pad = 4 + ((4 - ((135 + pkl.length) % 4)) % 4); // puts the storage's data at a multiple of 4
  zip(z, [['archive/data.pkl', pkl], ['archive/version', Buffer.alloc(pad, 0x20)], ['archive/data/0', Buffer.alloc(16)]]);
  const ts = new TensorFileSource(openTensorFile(z));
  assert.equal(ts.location('t'), undefined);
  const c = ts.file.info('c');
  assert.equal(c.offset % 4, 0);
  assert.deepEqual(ts.location('c'), { path: z, offset: c.offset });
  // Safetensors shards named with a folder are refused like torch ones (they are looked up by file name).
  const dir = path.join(tmp, `shards${seq++}`);
  fs.mkdirSync(path.join(dir, 'sub'), { recursive: true });
  fs.copyFileSync(p, path.join(dir, 'sub', 'a.safetensors'));
  const idx = path.join(dir, 'model.safetensors.index.json');
  for (const shard of ['sub/a.safetensors', 'sub\\a.safetensors']) {
    fs.writeFileSync(idx, JSON.stringify({ weight_map: { w: shard } }));
    refused(() => openSharded(idx), `${idx} [w]: shard ${JSON.stringify(shard)} is not a file name in ${dir}`);
  }
});

test('F32 mirror: a temp folder that cannot be made means conversion in memory (and a later try may succeed)', () => {
  const p = file('safetensors');
  const h = Buffer.from(JSON.stringify({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] } }));
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(h.length));
  fs.writeFileSync(p, Buffer.concat([len, h, Buffer.from([0x00, 0x3c])]));
  const f = SafetensorsFile.open(p);
  const saved = process.env.TMPDIR;
  setWeightMirrorFolder(undefined);
  try {
    process.env.TMPDIR = path.join(tmp, 'no-such-dir', 'deeper');
    assert.equal(f32Mirror(f), undefined);
    if (saved === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = saved;
    const m = f32Mirror(f);
    assert.ok(m, 'made once a temp folder can be made');
    assert.deepEqual([...m.readFloat32('h').data], [1]);
    // A second file's mirror goes to the same (one per process) temp folder.
    const q = file('safetensors');
    fs.writeFileSync(q, Buffer.concat([len, h, Buffer.from([0x00, 0x40])]));
    const g = SafetensorsFile.open(q);
    assert.equal(path.dirname(f32Mirror(g)!.path), path.dirname(m.path));
    g.close();
  } finally {
    if (saved === undefined) delete process.env.TMPDIR; else process.env.TMPDIR = saved;
    f.close();
  }
});
