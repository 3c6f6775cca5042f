/**
 * The weights-only unpickler (src/io/pickle.ts) opcode by opcode, on byte strings written here from the
 * pickle protocol (CPython's Lib/pickletools.py: opcode bytes, argument widths and endianness, two's
 * complement LONG1/LONG4, big-endian BINFLOAT, MARK-based TUPLE/LIST/DICT/APPENDS/SETITEMS, memo opcodes)
 * and torch's rebuild functions' argument lists. Every refusal is checked word for word. Milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FileFormatError } from '../src/errors.js';
import {
  ALLOWED_GLOBALS, PickleTruncated, PyDict, PyGlobal, PyStorage, PyTensor, PyTuple, kindOf, makeTensor, storageDType, unpickle,
  type PyValue,
} from '../src/io/pickle.js';

const F = 'f.pt';
/** Bytes from numbers (single bytes), strings (latin-1) and buffers. */
function P(...parts: (number | string | Buffer | Uint8Array)[]): Buffer {
  return Buffer.concat(parts.map((x) => (typeof x === 'number' ? Buffer.from([x]) : typeof x === 'string' ? Buffer.from(x, 'latin1') : Buffer.from(x))));
}
const u32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeUInt32LE(n); return b; };
const i32 = (n: number): Buffer => { const b = Buffer.alloc(4); b.writeInt32LE(n); return b; };
const u64 = (n: bigint): Buffer => { const b = Buffer.alloc(8); b.writeBigUInt64LE(n); return b; };
/** SHORT_BINUNICODE. */
const S = (s: string): Buffer => { const b = Buffer.from(s, 'utf8'); return P(0x8c, b.length, b); };
const G = (module: string, name: string): Buffer => P(`c${module}\n${name}\n`); // GLOBAL
const PROTO = P(0x80, 2);
const STOP = P(0x2e);
/** Unpickle PROTO + body + STOP and return the value. */
const val = (...body: (number | string | Buffer)[]): PyValue => unpickle(P(PROTO, ...body, STOP), { file: F }).value;
function refused(fn: () => unknown, message: string, truncated = false): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
    assert.equal(e instanceof PickleTruncated, truncated, `PickleTruncated: ${e.message}`);
    assert.equal(e.message, message);
    return true;
  });
}
/** The refusal of PROTO + body + STOP, `where` 'data.pkl'. */
const bad = (body: (number | string | Buffer)[], detail: string, truncated = false): void =>
  refused(() => unpickle(P(PROTO, ...body, STOP), { file: F, where: 'data.pkl' }), `${F}: refused pickle in data.pkl: ${detail}`, truncated);

test('scalars: None, bools, BININT / BININT1 / BININT2, LONG1 / LONG4 two\'s complement, BINFLOAT big-endian', () => {
  assert.deepEqual(unpickle(P(PROTO, 0x4e, STOP), { file: F }), { value: null, end: 4 });
  assert.equal(val(0x88), true);
  assert.equal(val(0x89), false);
  assert.equal(val(0x4a, 0xff, 0xff, 0xff, 0xff), -1);
  assert.equal(val(0x4a, 0x00, 0x00, 0x00, 0x80), -2147483648);
  assert.equal(val(0x4b, 0xff), 255);
  assert.equal(val(0x4d, 0x34, 0x12), 0x1234);
  assert.equal(val(0x4d, 0xff, 0xff), 65535);
  const long1: [number[], number | bigint][] = [
    [[], 0], [[0x7f], 127], [[0xff], -1], [[0x80], -128], [[0x00, 0x80], -32768], [[0xff, 0x00], 255],
    [[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f], 2 ** 53 - 1], [[0, 0, 0, 0, 0, 0, 0x20], 2n ** 53n],
    [[1, 0, 0, 0, 0, 0, 0xe0], -(2 ** 53 - 1)], [[0, 0, 0, 0, 0, 0, 0xe0], -(2n ** 53n)],
    [[0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19], 0x1950a86a20f9469cfc6cn], // torch's legacy magic number
  ];
  for (const [bytes, want] of long1) {
    const got = val(0x8a, bytes.length, Buffer.from(bytes));
    assert.equal(typeof got, typeof want, bytes.join(','));
    assert.equal(got, want, bytes.join(','));
  }
  assert.equal(val(0x8b, i32(2), 0x00, 0x01), 256);
  assert.equal(val(0x8b, i32(0)), 0);
  assert.equal(val(0x8b, i32(64), Buffer.alloc(64, 0xff)), -1);
  assert.equal(val(0x8a, 64, Buffer.alloc(64)), 0);
  bad([0x8a, 65, Buffer.alloc(65)], 'integer literal of 65 bytes at byte 2 (at most 64)');
  bad([0x8b, i32(65), Buffer.alloc(65)], 'integer literal of 65 bytes at byte 2 (at most 64)');
  bad([0x8b, i32(-1)], 'integer literal of -1 bytes at byte 2 (at most 64)');
  assert.equal(val(0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0), 1.5);
  assert.equal(val(0x47, 0xc0, 0x09, 0x21, 0xfb, 0x54, 0x44, 0x2d, 0x18), -Math.PI);
  // FRAME (protocol 4): an 8-byte length hint, skipped.
  assert.equal(unpickle(P(0x80, 4, 0x95, u64(3n), 0x4b, 7, STOP), { file: F }).value, 7);
  // Protocols 2-5 only.
  for (const p of [2, 3, 4, 5]) assert.equal(unpickle(P(0x80, p, 0x4e, STOP), { file: F }).value, null);
  for (const p of [0, 1, 6]) refused(() => unpickle(P(0x80, p, 0x4e, STOP), { file: F }), `${F}: refused pickle: pickle protocol ${p} (torch checkpoints use 2-5)`);
  // A start offset (legacy files hold several pickles back to back) and the end position.
  const two = P(PROTO, 0x4b, 1, STOP, PROTO, 0x4b, 2, STOP);
  assert.deepEqual(unpickle(two, { file: F }), { value: 1, end: 5 });
  assert.deepEqual(unpickle(two, { file: F }, 5), { value: 2, end: 10 });
});

test('strings and bytes: UTF-8 BINUNICODE widths, latin-1 BINSTRING, byte strings copied out of the data', () => {
  const eu = Buffer.from('é€x', 'utf8');
  assert.equal(val(0x58, u32(eu.length), eu), 'é€x');
  assert.equal(val(0x8c, eu.length, eu), 'é€x');
  assert.equal(val(0x8d, u64(BigInt(eu.length)), eu), 'é€x');
  assert.equal(val(0x54, i32(2), 0xe9, 0x41), 'éA');
  assert.equal(val(0x55, 2, 0xe9, 0x41), 'éA');
  bad([0x54, i32(-2)], 'negative BINSTRING length at byte 2');
  const data = new Uint8Array(P(PROTO, 0x42, u32(3), 1, 2, 3, 0x43, 2, 4, 5, 0x8e, u64(1n), 6, 0x87, STOP)); // a plain Uint8Array
  const t = unpickle(data, { file: F }).value as PyTuple;
  assert.deepEqual(t.items.map((b) => [...(b as Uint8Array)]), [[1, 2, 3], [4, 5], [6]]);
  for (const b of t.items) assert.ok(b instanceof Uint8Array && b.buffer !== data.buffer, 'a copy, not a view of the pickle');
  // Lengths that run past the data.
  bad([0x58, u32(9), 'ab'], 'BINUNICODE string of 9 bytes at byte 7 runs past the end of the data (3 bytes left; truncated or oversized length)', true);
  bad([0x8d, u64(0xffffffffffffffffn)], 'BINUNICODE8 string of 18446744073709551615 bytes at byte 11 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x8d, u64(2n)], 'BINUNICODE8 string of 2 bytes at byte 11 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  assert.equal(val(0x8d, u64(1n), 'z'), 'z'); // exactly the bytes left
  bad([0x8e, u64(5n)], 'BINBYTES8 of 5 bytes at byte 11 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x42, u32(5)], 'BINBYTES of 5 bytes at byte 7 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x43, 5], 'SHORT_BINBYTES of 5 bytes at byte 4 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x55, 5], 'SHORT_BINSTRING of 5 bytes at byte 4 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x54, i32(5)], 'BINSTRING of 5 bytes at byte 7 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x8c, 5], 'SHORT_BINUNICODE string of 5 bytes at byte 4 runs past the end of the data (1 bytes left; truncated or oversized length)', true);
  bad([0x47, 0, 0], 'BINFLOAT of 8 bytes at byte 3 runs past the end of the data (3 bytes left; truncated or oversized length)', true);
  // Argument bytes of fixed width.
  const arg = (op: number, have: number, n: number): void =>
    refused(() => unpickle(P(PROTO, op, Buffer.alloc(have)), { file: F }), `${F}: refused pickle: argument of ${n} bytes at byte 3 runs past the end of the data (${have} bytes left; truncated or oversized length)`, true);
  arg(0x4b, 0, 1); arg(0x4d, 1, 2); arg(0x4a, 3, 4); arg(0x58, 3, 4); arg(0x8d, 7, 8); arg(0x95, 7, 8); arg(0x72, 3, 4);
  refused(() => unpickle(P(PROTO, 0x4e), { file: F, where: 'x' }), `${F}: refused pickle in x: the data ends at byte 3 without a STOP opcode (truncated)`, true);
  refused(() => unpickle(P(), { file: F }), `${F}: refused pickle: the data ends at byte 0 without a STOP opcode (truncated)`, true);
});

test('containers: MARK, TUPLE / TUPLE1-3, LIST, DICT, APPEND(S), SETITEM(S), POP, POP_MARK, DUP', () => {
  assert.deepEqual((val(0x29) as PyTuple).items, []);
  assert.deepEqual((val(0x28, 0x4b, 1, 0x4b, 2, 0x74) as PyTuple).items, [1, 2]);
  assert.deepEqual((val(0x4b, 1, 0x85) as PyTuple).items, [1]);
  assert.deepEqual((val(0x4b, 1, 0x4b, 2, 0x86) as PyTuple).items, [1, 2]);
  assert.deepEqual((val(0x4b, 1, 0x4b, 2, 0x4b, 3, 0x87) as PyTuple).items, [1, 2, 3]);
  assert.deepEqual(val(0x5d), []);
  assert.deepEqual(val(0x28, 0x4b, 1, 0x4b, 2, 0x6c), [1, 2]);
  assert.deepEqual(val(0x5d, 0x4b, 1, 0x61, 0x28, 0x4b, 2, 0x4b, 3, 0x65), [1, 2, 3]);
  // Nested marks: the inner one closes first.
  assert.deepEqual(val(0x28, 0x4b, 1, 0x28, 0x4b, 2, 0x6c, 0x74), new PyTuple([1, [2]]));
  const d = val(0x28, S('a'), 0x4b, 1, S('b'), 0x4b, 2, 0x64) as PyDict;
  assert.equal(d.ordered, false);
  assert.deepEqual([...d.entries.values()], [['a', 1], ['b', 2]]);
  const e = val(0x7d, S('k'), 0x4b, 3, 0x73, 0x28, S('l'), 0x4b, 4, S('m'), 0x4b, 5, 0x75) as PyDict;
  assert.equal(e.ordered, false);
  assert.deepEqual([...e.entries.values()], [['k', 3], ['l', 4], ['m', 5]]);
  assert.equal(e.get('l'), 4);
  assert.equal(e.get('zz'), undefined);
  assert.equal(val(0x4b, 1, 0x4b, 2, 0x30), 1); // POP
  assert.equal(val(0x4b, 1, 0x28, 0x4b, 2, 0x4b, 3, 0x31), 1); // POP_MARK
  assert.deepEqual(val(0x5d, 0x32, 0x86), new PyTuple([[], []])); // DUP: the same object twice
  const dup = val(0x5d, 0x32, 0x86) as PyTuple;
  assert.equal(dup.items[0], dup.items[1]);
  // Refusals.
  bad([], 'stack underflow at byte 2');
  bad([0x28], 'stack underflow at byte 3');
  bad([0x30], 'stack underflow at byte 2');
  bad([0x28, 0x30], 'stack underflow at byte 3');
  bad([0x32], 'stack underflow at byte 2');
  bad([0x28, 0x32], 'stack underflow at byte 3');
  bad([0x4b, 1, 0x74], 'MARK missing at byte 4');
  bad([0x31], 'MARK missing at byte 2');
  bad([0x5d, S('k'), 0x4b, 1, 0x73], 'SETITEM(S) on a list, not a dict');
  bad([0x4e, 0x28, 0x75], 'SETITEM(S) on a None, not a dict');
  bad([0x7d, 0x28, S('k'), 0x75], 'SETITEMS with an odd number of items');
  bad([0x28, S('k'), 0x64], 'SETITEMS with an odd number of items');
  bad([0x7d, 0x4b, 1, 0x61], 'APPEND(S) on a dict, not a list');
  bad([0x29, 0x28, 0x4b, 1, 0x65], 'APPEND(S) on a tuple, not a list');
  bad([0x5d, 0x61], 'stack underflow at byte 3');
});

test('memo: BINPUT / LONG_BINPUT / MEMOIZE and BINGET / LONG_BINGET by index; unwritten entries refused', () => {
  assert.deepEqual(val(0x4b, 7, 0x71, 3, 0x30, 0x68, 3), 7);
  assert.deepEqual(val(0x4b, 8, 0x72, u32(0x01020304), 0x30, 0x6a, u32(0x01020304)), 8);
  // MEMOIZE numbers entries 0, 1, ... by the memo's size.
  assert.deepEqual((val(0x4b, 5, 0x94, 0x4b, 6, 0x94, 0x68, 0, 0x68, 1, 0x86) as PyTuple).items, [5, 6]);
  assert.deepEqual((val(0x4b, 5, 0x94, 0x30, 0x4b, 6, 0x94, 0x30, 0x68, 1, 0x68, 0, 0x86) as PyTuple).items, [6, 5]);
  // BINGET reads one byte, LONG_BINGET four.
  assert.deepEqual((val(0x4b, 9, 0x71, 1, 0x68, 1, 0x4b, 2, 0x86) as PyTuple).items, [9, 2]);
  bad([0x68, 5], 'memo entry 5 read before it was written (byte 2)');
  bad([0x4b, 1, 0x71, 0, 0x6a, u32(256)], 'memo entry 256 read before it was written (byte 6)');
  bad([0x71, 0], 'stack underflow at byte 3');
});

test('globals: only the allow-list, GLOBAL lines of at most 256 bytes, STACK_GLOBAL of two strings', () => {
  assert.deepEqual(ALLOWED_GLOBALS, [
    'collections.OrderedDict', 'torch._utils._rebuild_tensor_v2', 'torch._utils._rebuild_tensor', 'torch._utils._rebuild_parameter', 'torch.Size',
    'torch.UntypedStorage', 'torch.storage.UntypedStorage', 'torch.FloatStorage', 'torch.HalfStorage', 'torch.BFloat16Storage', 'torch.DoubleStorage',
    'torch.LongStorage', 'torch.IntStorage', 'torch.ShortStorage', 'torch.CharStorage', 'torch.ByteStorage', 'torch.BoolStorage',
  ]);
  for (const q of ALLOWED_GLOBALS) {
    const cut = q.lastIndexOf('.');
    const g = val(G(q.slice(0, cut), q.slice(cut + 1))) as PyGlobal;
    assert.ok(g instanceof PyGlobal);
    assert.equal(g.qualified, q);
    const s = val(S(q.slice(0, cut)), S(q.slice(cut + 1)), 0x93) as PyGlobal;
    assert.deepEqual([s.module, s.name], [q.slice(0, cut), q.slice(cut + 1)]);
  }
  const dtypes: Record<string, string | undefined> = {
    FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64', IntStorage: 'I32',
    ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL', UntypedStorage: 'U8',
  };
  for (const [n, dt] of Object.entries(dtypes)) assert.equal(storageDType(new PyGlobal('torch', n)), dt, n);
  assert.equal(storageDType(new PyGlobal('torch.storage', 'UntypedStorage')), 'U8');
  assert.equal(storageDType(new PyGlobal('torch', 'Size')), undefined);
  assert.equal(storageDType(new PyGlobal('collections', 'OrderedDict')), undefined);
  assert.equal(storageDType(new PyGlobal('torch', 'ComplexFloatStorage')), undefined);
  assert.equal(storageDType(new PyGlobal('numpy', 'FloatStorage')), undefined);
  const notAllowed = (q: string): string => `global '${q}' is not allowed (weights-only loading permits only tensors, storages and OrderedDict: collections.OrderedDict, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_tensor, torch._utils._rebuild_parameter, torch.Size, torch.*Storage); nothing was executed`;
  bad([G('posix', 'system')], notAllowed('posix.system'));
  bad([G('torch', 'ComplexFloatStorage')], notAllowed('torch.ComplexFloatStorage'));
  bad([S('builtins'), S('eval'), 0x93], notAllowed('builtins.eval'));
  bad([S('os'), 0x4b, 1, 0x93], 'STACK_GLOBAL of a string and a number (byte 8)');
  bad([0x4b, 1, S('system'), 0x93], 'STACK_GLOBAL of a number and a string (byte 12)');
  bad([0x93], 'stack underflow at byte 2');
  // Line lengths: 256 bytes is a line (then judged by the allow-list), 257 is not.
  const m256 = 'm'.repeat(256);
  bad([G(m256, 'x')], notAllowed(`${m256}.x`));
  bad([G('m'.repeat(257), 'x')], 'GLOBAL module at byte 3 is not a newline-terminated line of at most 256 bytes');
  bad([G('torch', 'n'.repeat(257))], 'GLOBAL name at byte 9 is not a newline-terminated line of at most 256 bytes');
  // No newline before the data ends: truncated (a reader may retry with more data).
  refused(() => unpickle(P(PROTO, 'ctorch\nSize'), { file: F }), `${F}: refused pickle: GLOBAL name at byte 9 runs past the end of the data (truncated)`, true);
  refused(() => unpickle(P(PROTO, 'ctorch'), { file: F }), `${F}: refused pickle: GLOBAL module at byte 3 runs past the end of the data (truncated)`, true);
  refused(() => unpickle(P(PROTO, 'ctorch\nSize\n'), { file: F }), `${F}: refused pickle: the data ends at byte 14 without a STOP opcode (truncated)`, true);
});

test('every opcode outside the weights-only set is refused by name, nothing run', () => {
  const names: [number, string][] = [
    [0x49, 'INT'], [0x46, 'FLOAT'], [0x4c, 'LONG'], [0x53, 'STRING'], [0x56, 'UNICODE'], [0x50, 'PERSID'], [0x67, 'GET'], [0x70, 'PUT'],
    [0x69, 'INST'], [0x6f, 'OBJ'], [0x81, 'NEWOBJ'], [0x92, 'NEWOBJ_EX'], [0x82, 'EXT1'], [0x83, 'EXT2'], [0x84, 'EXT4'],
    [0x8f, 'EMPTY_SET'], [0x90, 'ADDITEMS'], [0x91, 'FROZENSET'], [0x96, 'BYTEARRAY8'], [0x97, 'NEXT_BUFFER'], [0x98, 'READONLY_BUFFER'],
  ];
  for (const [op, name] of names) bad([op], `opcode 0x${op.toString(16)} (${name}) at byte 2 is not allowed in a weights-only checkpoint`);
  bad([0x4e, 0x01], 'opcode 0x01 at byte 3 is not allowed in a weights-only checkpoint');
  bad([0xff], 'opcode 0xff at byte 2 is not allowed in a weights-only checkpoint');
  // Persistent ids only with a loader (torch checkpoints), which gets the id.
  bad([0x4b, 1, 0x51], 'persistent id at byte 4 outside a torch checkpoint');
  const seen: PyValue[] = [];
  assert.equal(unpickle(P(PROTO, S('k'), 0x51, STOP), { file: F, persistentLoad: (pid) => { seen.push(pid); return 42; } }).value, 42);
  assert.deepEqual(seen, ['k']);
});

test('dict keys: Python equality (1 == True), tuples and bytes hashable, lists not; nesting and size budgets', () => {
  const keys = (...pairs: Buffer[]): PyDict => val(0x7d, 0x28, ...pairs, 0x75) as PyDict;
  const k = keys(P(0x4b, 1), S('int'), P(0x88), S('true'), P(0x89), S('false'), P(0x4b, 0), S('zero'), P(0x4e), S('none'), S('1'), S('str'),
    P(0x43, 1, 0x31), S('bytes'), P(0x4b, 1, S('a'), 0x86), S('tuple'), P(0x8a, 9, Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 1])), S('big'));
  // 1 and True are one key (the later value wins), as are 0 and False; '1', b'1' and (1, 'a') are others.
  assert.deepEqual([...k.entries.values()].map(([, v]) => v), ['true', 'zero', 'none', 'str', 'bytes', 'tuple', 'big']);
  assert.deepEqual([...k.entries.values()].slice(2).map(([key]) => (key instanceof PyTuple ? key.items : key instanceof Uint8Array ? [...key] : key)), [null, '1', [0x31], [1, 'a'], 2n ** 64n]);
  const unhashable = (body: Buffer[], kind: string): void => refused(() => unpickle(P(PROTO, ...body, STOP), { file: F }), `${F}: refused: unhashable ${kind} used as a dict key`);
  unhashable([P(0x7d, 0x5d), S('v'), P(0x73)], 'list');
  unhashable([P(0x7d, 0x7d), S('v'), P(0x73)], 'dict');
  unhashable([P(0x7d, 0x5d, 0x85), S('v'), P(0x73)], 'list');
  unhashable([P(0x28, 0x7d), S('v'), P(0x64)], 'dict');
  // Nesting: a key of 33 nested tuples (depth 32 inside) is accepted, 34 are refused.
  const nested = (n: number): Buffer => P(0x29, ...Array(n - 1).fill(0x85));
  assert.equal(keys(nested(33), S('v')).entries.size, 1);
  refused(() => unpickle(P(PROTO, 0x7d, nested(34), S('v'), 0x73, STOP), { file: F }), `${F}: refused: a pickled dict key is nested too deeply or too large`);
  // Size: 4096 characters of canonical form; the budget is checked before each part of a tuple key.
  const str = (n: number): Buffer => P(0x58, u32(n), Buffer.alloc(n, 0x61));
  assert.equal(keys(P(str(4094), S('y'), 0x86), S('v')).entries.size, 1); // 's' + 4094 = 4095 used
  refused(() => unpickle(P(PROTO, 0x7d, str(4095), S('y'), 0x86, S('v'), 0x73, STOP), { file: F }), `${F}: refused: a pickled dict key is nested too deeply or too large`);
  assert.equal(keys(str(9000), S('v')).entries.size, 1); // a lone string is one part
});

test('kindOf names every value kind (used in every message)', () => {
  const st = new PyStorage('0', 'F32', 4, { offset: 0, nbytes: 16 });
  const cases: [PyValue, string][] = [
    [null, 'None'], [[], 'list'], [new Uint8Array(1), 'bytes'], [new PyTuple([]), 'tuple'], [new PyDict(true), 'OrderedDict'],
    [new PyDict(false), 'dict'], [new PyGlobal('torch', 'Size'), 'global torch.Size'], [st, 'storage'],
    [new PyTensor(st, 0, [1], [1], false), 'tensor'], [5n, 'int'], [5, 'number'], ['s', 'string'], [true, 'boolean'],
  ];
  for (const [v, k] of cases) assert.equal(kindOf(v), k);
  assert.equal(new PyTensor(new PyStorage('k', 'BF16', 1, { offset: 0, nbytes: 2 }), 0, [], [], false).dtype, 'BF16');
});

test('REDUCE: OrderedDict, torch.Size, _rebuild_tensor(_v2) and _rebuild_parameter argument checks', () => {
  const OD = G('collections', 'OrderedDict');
  const R = 0x52;
  const od = val(OD, 0x29, R) as PyDict;
  assert.ok(od instanceof PyDict && od.ordered && od.entries.size === 0);
  // From a list of pairs, a tuple of pairs, pairs as lists.
  const fromList = val(OD, 0x28, S('a'), 0x4b, 1, 0x86, 0x28, S('b'), 0x4b, 2, 0x6c, 0x6c, 0x85, R) as PyDict;
  assert.deepEqual([...fromList.entries.values()], [['a', 1], ['b', 2]]);
  assert.equal(fromList.ordered, true);
  const fromTuple = val(OD, S('c'), 0x4b, 3, 0x86, 0x85, 0x85, R) as PyDict;
  assert.deepEqual([...fromTuple.entries.values()], [['c', 3]]);
  const odName = 'collections.OrderedDict';
  bad([OD, 0x28, S('a'), 0x4b, 1, 0x4b, 2, 0x87, 0x6c, 0x85, R], `${odName} item is not a (key, value) pair`);
  bad([OD, 0x28, 0x4b, 1, 0x6c, 0x85, R], `${odName} item is not a (key, value) pair`);
  bad([OD, 0x4b, 1, 0x85, R], `${odName} called with a number`);
  bad([OD, 0x5d, R], `${odName} called with a list instead of an argument tuple`);
  bad([OD, 0x5d, 0x5d, 0x86, R], `${odName} called with 2 arguments (expected 0-1)`);
  bad([0x5d, 0x29, R], 'REDUCE calls a list, not an allowed global');
  bad([G('torch', 'FloatStorage'), 0x29, R], 'torch.FloatStorage is not callable in a weights-only checkpoint');
  bad([G('torch', 'UntypedStorage'), 0x29, R], 'torch.UntypedStorage is not callable in a weights-only checkpoint');
  bad([0x29, R], 'stack underflow at byte 3');
  // torch.Size
  assert.deepEqual(val(G('torch', 'Size'), 0x29, R), new PyTuple([]));
  assert.deepEqual(val(G('torch', 'Size'), 0x4b, 2, 0x4b, 3, 0x86, 0x85, R), new PyTuple([2, 3]));
  bad([G('torch', 'Size'), 0x4b, 2, 0x85, R], 'torch.Size is a number, not a tuple of integers');
  bad([G('torch', 'Size'), 0x4b, 2, 0x4b, 3, 0x86, 0x4b, 3, 0x86, R], 'torch.Size called with 2 arguments (expected 0-1)');
  // A storage through a persistent id, then the rebuild functions.
  const storage = new PyStorage('0', 'F32', 6, { offset: 100, nbytes: 24 });
  const load = { file: F, where: 'data.pkl', persistentLoad: (): PyValue => storage };
  const run = (...body: (number | string | Buffer)[]): PyValue => unpickle(P(PROTO, ...body, STOP), load).value;
  const fail = (body: (number | string | Buffer)[], detail: string): void => refused(() => unpickle(P(PROTO, ...body, STOP), load), `${F}: refused pickle in data.pkl: ${detail}`);
  const V2 = G('torch._utils', '_rebuild_tensor_v2');
  const st = P(S('k'), 0x51);
  const size23 = P(0x4b, 2, 0x4b, 3, 0x86);
  const stride31 = P(0x4b, 3, 0x4b, 1, 0x86);
  const hooks = P(OD, 0x29, R);
  const t = run(V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, hooks, 0x74, R) as PyTensor;
  assert.ok(t instanceof PyTensor);
  assert.deepEqual([t.storage, t.storageOffset, t.shape, t.stride, t.parameter], [storage, 0, [2, 3], [3, 1], false]);
  // requires_grad True, hooks None, a 7th (metadata) argument None or a dict.
  assert.ok(run(V2, 0x28, st, 0x4b, 0, size23, stride31, 0x88, 0x4e, 0x74, R) instanceof PyTensor);
  assert.ok(run(V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x4e, 0x4e, 0x74, R) instanceof PyTensor);
  assert.ok(run(V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x4e, 0x7d, 0x74, R) instanceof PyTensor);
  const v2 = 'torch._utils._rebuild_tensor_v2';
  fail([V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x74, R], `${v2} called with 5 arguments (expected 6-7)`);
  fail([V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x4e, 0x4e, 0x4e, 0x74, R], `${v2} called with 8 arguments (expected 6-7)`);
  fail([V2, 0x28, st, 0x4b, 0, size23, stride31, 0x4b, 0, 0x4e, 0x74, R], `${v2}: requires_grad is a number`);
  fail([V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x7d, S('h'), 0x4e, 0x73, 0x74, R], `${v2}: backward hooks must be empty, got dict`);
  fail([V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x5d, 0x74, R], `${v2}: backward hooks must be empty, got list`);
  fail([V2, 0x28, st, 0x4b, 0, size23, stride31, 0x89, 0x4e, 0x5d, 0x74, R], `${v2}: metadata is a list`);
  fail([V2, 0x5d, R], `${v2} called with a list instead of an argument tuple`);
  const V1 = G('torch._utils', '_rebuild_tensor');
  const t1 = run(V1, 0x28, st, 0x4b, 1, 0x4b, 5, 0x85, 0x4b, 1, 0x85, 0x74, R) as PyTensor;
  assert.deepEqual([t1.storageOffset, t1.shape, t1.stride, t1.parameter], [1, [5], [1], false]);
  fail([V1, 0x28, st, 0x4b, 1, 0x4b, 5, 0x85, 0x74, R], 'torch._utils._rebuild_tensor called with 3 arguments (expected 4)');
  const PR = G('torch._utils', '_rebuild_parameter');
  const tensor = P(V1, 0x28, st, 0x4b, 0, 0x4b, 6, 0x85, 0x4b, 1, 0x85, 0x74, R);
  const p = run(PR, 0x28, tensor, 0x88, hooks, 0x74, R) as PyTensor;
  assert.deepEqual([p.storage, p.storageOffset, p.shape, p.stride, p.parameter], [storage, 0, [6], [1], true]);
  const pr = 'torch._utils._rebuild_parameter';
  fail([PR, 0x28, 0x5d, 0x88, 0x4e, 0x74, R], `${pr} of a list, not a tensor`);
  fail([PR, 0x28, tensor, 0x4e, 0x4e, 0x74, R], `${pr}: requires_grad is a None`);
  fail([PR, 0x28, tensor, 0x88, 0x7d, S('h'), 0x4e, 0x73, 0x74, R], `${pr}: backward hooks must be empty, got dict`);
  fail([PR, 0x28, tensor, 0x88, 0x74, R], `${pr} called with 2 arguments (expected 3)`);
  // BUILD sets an OrderedDict's attributes (torch's _metadata), nothing else.
  const b = val(OD, 0x29, R, 0x7d, S('v'), 0x4b, 1, 0x73, 0x62) as PyDict;
  assert.deepEqual([...b.attributes!.entries.values()], [['v', 1]]);
  assert.equal(b.entries.size, 0);
  bad([0x7d, 0x7d, 0x62], 'BUILD (setting state) on a dict with a dict (byte 4); only an OrderedDict\'s attributes are accepted');
  bad([OD, 0x29, R, 0x5d, 0x62], `BUILD (setting state) on a OrderedDict with a list (byte ${2 + OD.length + 3}); only an OrderedDict's attributes are accepted`);
  bad([0x5d, 0x7d, 0x62], 'BUILD (setting state) on a list with a dict (byte 4); only an OrderedDict\'s attributes are accepted');
});

test('makeTensor: a strided view must stay inside its storage; sizes, strides and offsets are checked', () => {
  const st = new PyStorage('k', 'F32', 6, { offset: 0, nbytes: 24 });
  const fail = (m: string): never => { throw new FileFormatError(F, m); };
  const tup = (...x: PyValue[]): PyTuple => new PyTuple(x);
  const mk = (offset: PyValue, size: PyValue, stride: PyValue, storage: PyValue = st): PyTensor => makeTensor(storage, offset, size, stride, fail);
  const no = (fn: () => unknown, m: string): void => refused(fn, `${F}: ${m}`);
  assert.deepEqual(mk(0, tup(2, 3), tup(3, 1)).shape, [2, 3]);
  assert.deepEqual(mk(0, [2, 3], [1, 2]).stride, [1, 2]); // lists as well as tuples; transposed: last element 1 + 2*2 = 5
  assert.equal(mk(5, tup(), tup()).storageOffset, 5); // 0-dim at the last element
  assert.equal(mk(100, tup(0), tup(1)).storageOffset, 100); // empty: no element is read
  assert.equal(mk(0, tup(6, 1), tup(1, 0)).shape.length, 2);
  assert.equal(makeTensor(st, 0, tup(6), tup(1), fail, true).parameter, true);
  assert.equal(makeTensor(st, 0, tup(6), tup(1), fail).parameter, false);
  no(() => mk(0, tup(2, 3), tup(3, 1), []), 'tensor built on a list, not a storage');
  no(() => mk(1, tup(2, 3), tup(3, 1)), "tensor [2, 3] with stride [3, 1] at offset 1 reaches element 6 of storage 'k', which holds 6");
  no(() => mk(6, tup(), tup()), "tensor [] with stride [] at offset 6 reaches element 6 of storage 'k', which holds 6");
  no(() => mk(0, tup(7), tup(1)), "tensor [7] with stride [1] at offset 0 reaches element 6 of storage 'k', which holds 6");
  no(() => mk(0, tup(2, 2), tup(1, 5)), "tensor [2, 2] with stride [1, 5] at offset 0 reaches element 6 of storage 'k', which holds 6");
  for (const off of [-1, 1.5, '0', 1n, null]) no(() => mk(off, tup(1), tup(1)), `tensor storage offset ${String(off)} is not a non-negative integer`);
  no(() => mk(0, 5, tup(1)), 'tensor size is a number, not a tuple of integers');
  no(() => mk(0, tup(1), new PyDict(false)), 'tensor stride is a dict, not a tuple of integers');
  no(() => mk(0, tup(-1), tup(1)), 'tensor size holds number (-1), not a non-negative integer');
  no(() => mk(0, tup(1.5), tup(1)), 'tensor size holds number (1.5), not a non-negative integer');
  no(() => mk(0, tup(5n), tup(1)), 'tensor size holds 5 (5), not a non-negative integer');
  no(() => mk(0, tup('2'), tup(1)), 'tensor size holds string (2), not a non-negative integer');
  no(() => mk(0, tup(2 ** 53), tup(1)), `tensor size holds number (${2 ** 53}), not a non-negative integer`);
  no(() => mk(0, tup(1), tup(-1)), 'tensor stride holds number (-1), not a non-negative integer');
  no(() => mk(0, tup(2, 3), tup(1)), 'tensor size [2, 3] and stride [1] differ in length');
  const ones = (n: number): PyTuple => new PyTuple(Array(n).fill(1));
  assert.equal(mk(0, ones(64), ones(64)).shape.length, 64);
  no(() => mk(0, ones(65), ones(65)), 'tensor size has 65 dimensions (at most 64)');
  no(() => mk(0, tup(1), ones(65)), 'tensor stride has 65 dimensions (at most 64)');
  no(() => mk(0, tup(2 ** 30, 2 ** 30), tup(1, 1)), `tensor size [${2 ** 30}, ${2 ** 30}] is too large`);
  no(() => mk(0, tup(3), tup(2 ** 53 - 1)), 'tensor size [3] is too large');
  no(() => mk(2 ** 53 - 1, tup(2), tup(1)), 'tensor size [2] is too large');
});
