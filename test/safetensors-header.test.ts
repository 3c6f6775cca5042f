/**
 * safetensors byte by byte, from the format's README (huggingface/safetensors): an 8-byte little-endian
 * u64 N, an N-byte UTF-8 JSON header `{name: {dtype, shape, data_offsets: [begin, end)}}` (offsets relative
 * to the byte buffer after the header; `__metadata__` a string map; the header may be padded with spaces),
 * then little-endian row-major data. Every refusal is checked word for word (file, key, expected, actual);
 * the conversions against IEEE 754 binary16 / bfloat16 values worked out by hand. Milliseconds: files are
 * built in memory here, never by the code under test.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { openForReading } from '../src/io/open-file.js';
import { SafetensorsFile, SafetensorsWriter, readAllFloat32, toFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { refused } from './refusals.js';
import { f32, u16 } from './bytes.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-sth-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

/** The file bytes: u64 LE length, the header text (as given: JSON or not), the data. */
function stFile(header: unknown, data: Buffer = Buffer.alloc(0), opts: { len?: bigint; raw?: string } = {}): string {
  const h = Buffer.from(opts.raw ?? JSON.stringify(header), 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(opts.len ?? BigInt(h.length));
  const p = path.join(tmp, `f${seq++}.safetensors`);
  fs.writeFileSync(p, Buffer.concat([len, h, data]));
  return p;
}
function bytesFile(b: Buffer): string {
  const p = path.join(tmp, `b${seq++}.safetensors`);
  fs.writeFileSync(p, b);
  return p;
}
/** Open file descriptors of this process (-1 where /proc is not there). */
const openFds = (): number => (fs.existsSync('/proc/self/fd') ? fs.readdirSync('/proc/self/fd').length : -1);

test('header framing: the 8-byte length, its bounds, JSON object, torch files told apart by content', () => {
  for (const n of [0, 3, 7]) {
    const p = bytesFile(Buffer.alloc(n, 1));
    refused(() => SafetensorsFile.open(p), `${p}: not a safetensors file: ${n} bytes, fewer than the 8-byte header length`);
  }
  // 8 bytes saying 0: an empty header is not JSON.
  const empty = bytesFile(Buffer.alloc(8));
  refused(() => SafetensorsFile.open(empty), `${empty}: header is not valid JSON (Unexpected end of JSON input)`);
  // The header length may reach the end of the file exactly (no data), not one byte past it.
  const exact = stFile({});
  const f = SafetensorsFile.open(exact);
  assert.equal(f.tensors.size, 0);
  assert.deepEqual(f.metadata, {});
  f.close();
  const over = stFile({}, Buffer.alloc(0), { len: 3n });
  refused(() => SafetensorsFile.open(over), `${over}: not a safetensors file or truncated: header length 3 bytes but the file has 10 bytes`);
  const huge = stFile({}, Buffer.alloc(0), { len: 0xffffffffffffffffn });
  refused(() => SafetensorsFile.open(huge), `${huge}: not a safetensors file or truncated: header length 18446744073709551615 bytes but the file has 10 bytes`);
  // Not a JSON object.
  for (const raw of ['[1]', 'null', '7', '"s"']) {
    const p = stFile(undefined, Buffer.alloc(0), { raw });
    refused(() => SafetensorsFile.open(p), `${p}: header is not a JSON object`);
  }
  // Trailing spaces (the format's padding) are part of valid JSON.
  const padded = stFile(undefined, f32(2), { raw: '{"w":{"dtype":"F32","shape":[],"data_offsets":[0,4]}}   ' });
  const pf = SafetensorsFile.open(padded);
  assert.deepEqual(pf.info('w'), { name: 'w', dtype: 'F32', shape: [], offset: 8 + 56, byteLength: 4 });
  assert.deepEqual(pf.readFloat32('w'), { shape: [], data: new Float32Array([2]) });
  pf.close();
  // torch.save files: zip ('PK') or pickle (0x80) magic, and no '{' as the 9th byte.
  const torchMsg = (p: string): string => `${p}: this is a torch checkpoint (zip archive or pickle), not a safetensors file; open it with openTensorFile (weights-only)`;
  const zip = bytesFile(Buffer.from('PK\x03\x04\x14\x00\x00\x00\x00\x00\x00\x00', 'latin1'));
  refused(() => SafetensorsFile.open(zip), torchMsg(zip));
  const pkl = bytesFile(Buffer.from([0x80, 2, 0x7d, 0x2e, 0, 0, 0, 0, 0, 0]));
  refused(() => SafetensorsFile.open(pkl), torchMsg(pkl));
  // 'P' then not 'K', or 'K' after another letter: a (wrong) header length, not a torch file.
  const pz = bytesFile(Buffer.from('PZ\x03\x04\x14\x00\x00\x00\x00\x00', 'latin1'));
  refused(() => SafetensorsFile.open(pz), `${pz}: not a safetensors file or truncated: header length ${Buffer.from('PZ\x03\x04\x14\x00\x00\x00', 'latin1').readBigUInt64LE(0)} bytes but the file has 10 bytes`);
  const qk = bytesFile(Buffer.from('QK\x03\x04\x14\x00\x00\x00\x00\x00', 'latin1'));
  refused(() => SafetensorsFile.open(qk), `${qk}: not a safetensors file or truncated: header length ${Buffer.from('QK\x03\x04\x14\x00\x00\x00', 'latin1').readBigUInt64LE(0)} bytes but the file has 10 bytes`);
  // A header length whose first byte is 0x80 (128-byte header) is a safetensors file: its 9th byte is '{'.
  const hdr = JSON.stringify({ w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } });
  const raw128 = hdr + ' '.repeat(128 - hdr.length);
  const st128 = stFile(undefined, Buffer.from([9]), { raw: raw128 });
  assert.equal(fs.readFileSync(st128)[0], 0x80);
  const g = SafetensorsFile.open(st128);
  assert.deepEqual(g.readInts('w'), { shape: [1], data: [9] });
  g.close();
  // A missing file or a folder: one line naming the errno code.
  const missing = path.join(tmp, 'nope.safetensors');
  refused(() => SafetensorsFile.open(missing), `${missing}: cannot open: ENOENT`);
  refused(() => openForReading(missing), `${missing}: cannot open: ENOENT`);
});

test('header entries: dtype, shape, data_offsets and their byte counts are checked, each refusal word for word', () => {
  const d16 = Buffer.alloc(16);
  const one = (name: string, entry: unknown, data = d16): string => stFile({ [name]: entry }, data);
  const dtypes = 'F64, F32, F16, BF16, I64, I32, I16, I8, U8, BOOL';
  const cases: [unknown, string][] = [
    [5, 'header entry is not an object'],
    [null, 'header entry is not an object'],
    [{ shape: [4], data_offsets: [0, 16] }, `unknown dtype undefined (expected one of ${dtypes})`],
    [{ dtype: 4, shape: [4], data_offsets: [0, 16] }, `unknown dtype 4 (expected one of ${dtypes})`],
    [{ dtype: 'toString', shape: [4], data_offsets: [0, 16] }, `unknown dtype "toString" (expected one of ${dtypes})`],
    [{ dtype: 'f32', shape: [4], data_offsets: [0, 16] }, `unknown dtype "f32" (expected one of ${dtypes})`],
    [{ dtype: ['F32'], shape: [4], data_offsets: [0, 16] }, `unknown dtype ["F32"] (expected one of ${dtypes})`],
    [{ dtype: 'F32', data_offsets: [0, 16] }, 'shape undefined is not a list of non-negative integers'],
    [{ dtype: 'F32', shape: 4, data_offsets: [0, 16] }, 'shape 4 is not a list of non-negative integers'],
    [{ dtype: 'F32', shape: [2, -2], data_offsets: [0, 16] }, 'shape [2,-2] is not a list of non-negative integers'],
    [{ dtype: 'F32', shape: [1.5], data_offsets: [0, 16] }, 'shape [1.5] is not a list of non-negative integers'],
    [{ dtype: 'F32', shape: ['4'], data_offsets: [0, 16] }, 'shape ["4"] is not a list of non-negative integers'],
    [{ dtype: 'F32', shape: [4] }, 'data_offsets undefined are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: 16 }, 'data_offsets 16 are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: [16] }, 'data_offsets [16] are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: [0, 16, 16] }, 'data_offsets [0,16,16] are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: [-1, 15] }, 'data_offsets [-1,15] are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: [0.5, 16] }, 'data_offsets [0.5,16] are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: [0, '16'] }, 'data_offsets [0,"16"] are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [0], data_offsets: [8, 4] }, 'data_offsets [8,4] are not [begin, end] with 0 <= begin <= end'],
    [{ dtype: 'F32', shape: [4], data_offsets: [0, 12] }, 'shape [4] x F32 needs 16 bytes but data_offsets span 12'],
    [{ dtype: 'F16', shape: [2, 3], data_offsets: [0, 16] }, 'shape [2, 3] x F16 needs 12 bytes but data_offsets span 16'],
    [{ dtype: 'F64', shape: [3], data_offsets: [0, 16] }, 'shape [3] x F64 needs 24 bytes but data_offsets span 16'],
    [{ dtype: 'I32', shape: [2], data_offsets: [4, 16] }, 'shape [2] x I32 needs 8 bytes but data_offsets span 12'],
    [{ dtype: 'BOOL', shape: [], data_offsets: [0, 0] }, 'shape [] x BOOL needs 1 bytes but data_offsets span 0'],
    [{ dtype: 'I16', shape: [9], data_offsets: [0, 18] }, 'data ends at byte 18 of the data section but the file holds only 16 bytes after the header (truncated file?)'],
    [{ dtype: 'U8', shape: [1], data_offsets: [16, 17] }, 'data ends at byte 17 of the data section but the file holds only 16 bytes after the header (truncated file?)'],
  ];
  for (const [entry, detail] of cases) {
    const p = one('w.x', entry);
    refused(() => SafetensorsFile.open(p), `${p} [w.x]: ${detail}`);
  }
  // Every dtype's element size (the spec's table): one element of each fits exactly.
  const sizes: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
  for (const [dtype, n] of Object.entries(sizes)) {
    const ok = one('w', { dtype, shape: [2], data_offsets: [0, 2 * n] }, Buffer.alloc(2 * n));
    const f = SafetensorsFile.open(ok);
    assert.deepEqual(f.info('w'), { name: 'w', dtype, shape: [2], offset: fs.statSync(ok).size - 2 * n, byteLength: 2 * n });
    f.close();
    const bad = one('w', { dtype, shape: [2], data_offsets: [0, 2 * n + 1] }, Buffer.alloc(2 * n + 1));
    refused(() => SafetensorsFile.open(bad), `${bad} [w]: shape [2] x ${dtype} needs ${2 * n} bytes but data_offsets span ${2 * n + 1}`);
  }
  // Empty and 0-rank tensors are allowed; data may end exactly at the end of the file.
  const ok = stFile({ e: { dtype: 'F32', shape: [0, 3], data_offsets: [16, 16] }, s: { dtype: 'F32', shape: [], data_offsets: [12, 16] }, a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] } }, f32(1, 2, 3, 4));
  const f = SafetensorsFile.open(ok);
  assert.deepEqual([...f.tensors.keys()], ['e', 's', 'a']);
  assert.deepEqual(f.readFloat32('e'), { shape: [0, 3], data: new Float32Array(0) });
  assert.deepEqual(f.readFloat32('s'), { shape: [], data: new Float32Array([4]) });
  assert.deepEqual(f.readFloat32('a'), { shape: [3], data: new Float32Array([1, 2, 3]) });
  f.close();
});

test('__metadata__: a string map, values stringified, never a tensor; overlapping data is refused', () => {
  const p = stFile({ __metadata__: { format: 'pt', n: 3, ok: true }, w: { dtype: 'U8', shape: [2], data_offsets: [0, 2] } }, Buffer.from([7, 8]));
  const f = SafetensorsFile.open(p);
  assert.deepEqual(f.metadata, { format: 'pt', n: '3', ok: 'true' });
  assert.deepEqual([...f.tensors.keys()], ['w']);
  assert.equal(f.has('w'), true);
  assert.equal(f.has('__metadata__'), false);
  f.close();
  for (const md of [null, 'text', 0]) {
    const q = stFile({ __metadata__: md, w: { dtype: 'U8', shape: [1], data_offsets: [0, 1] } }, Buffer.from([1]));
    const g = SafetensorsFile.open(q);
    assert.deepEqual(g.metadata, {});
    assert.deepEqual([...g.tensors.keys()], ['w']);
    g.close();
  }
  // Overlaps: by begin offset, whatever the header order; touching spans and empty tensors are fine.
  const d = Buffer.alloc(32);
  const overlapCases: [Record<string, [number, number]>, string | undefined][] = [
    [{ a: [0, 16], b: [16, 32] }, undefined],
    [{ b: [16, 32], a: [0, 16] }, undefined],
    [{ a: [0, 16], e: [0, 0], f: [16, 16], b: [16, 32] }, undefined],
    [{ a: [0, 16], b: [8, 24] }, '[b]: data overlaps tensor a (bytes 8 < 16)'],
    [{ b: [8, 24], a: [0, 16] }, '[b]: data overlaps tensor a (bytes 8 < 16)'],
    [{ a: [0, 16], b: [0, 16] }, '[b]: data overlaps tensor a (bytes 0 < 16)'],
    [{ a: [0, 32], e: [8, 8] }, '[e]: data overlaps tensor a (bytes 8 < 32)'],
    [{ a: [0, 8], b: [8, 24], c: [16, 32] }, '[c]: data overlaps tensor b (bytes 16 < 24)'],
  ];
  for (const [spans, err] of overlapCases) {
    const header = Object.fromEntries(Object.entries(spans).map(([k, [b, e]]) => [k, { dtype: 'U8', shape: [e - b], data_offsets: [b, e] }]));
    const q = stFile(header, d);
    if (err === undefined) SafetensorsFile.open(q).close();
    else refused(() => SafetensorsFile.open(q), `${q} ${err}`);
  }
});

test('reading: positioned reads at header + begin, rows, integers, closed and shrunk files', () => {
  // Data section: 4 junk bytes, then a [3, 2] F16 tensor, then I8 / I16 / I32 / I64 / U8 / BOOL.
  const parts = [Buffer.from([0xaa, 0xbb, 0xcc, 0xdd]), u16(0x3c00, 0x4000, 0x4200, 0x4400, 0x4500, 0x4600)];
  const ints = {
    i8: ['I8', Buffer.from([0x80, 0x7f, 0xff])], i16: ['I16', u16(0x8000, 0x7fff, 0xffff)],
    i32: ['I32', Buffer.from([0, 0, 0, 0x80, 0xff, 0xff, 0xff, 0x7f, 0xfe, 0xff, 0xff, 0xff])],
    i64: ['I64', Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x1f, 0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 0, 0, 0, 0, 0, 0])],
    u8: ['U8', Buffer.from([0, 128, 255])], bool: ['BOOL', Buffer.from([1, 0, 1])],
  } as const;
  const header: Record<string, unknown> = { r: { dtype: 'F16', shape: [3, 2], data_offsets: [4, 16] } };
  let off = 16;
  for (const [k, [dt, b]] of Object.entries(ints)) {
    header[k] = { dtype: dt, shape: [3], data_offsets: [off, off + b.length] };
    parts.push(b);
    off += b.length;
  }
  const p = stFile(header, Buffer.concat(parts));
  const f = SafetensorsFile.open(p);
  const base = 8 + Buffer.byteLength(JSON.stringify(header));
  assert.equal(f.info('r').offset, base + 4);
  assert.deepEqual(f.readBytes('r'), parts[1]);
  assert.deepEqual(f.readFloat32('r'), { shape: [3, 2], data: new Float32Array([1, 2, 3, 4, 5, 6]) });
  assert.deepEqual(f.readRows('r', 1, 2), { shape: [2, 2], data: new Float32Array([3, 4, 5, 6]) });
  assert.deepEqual(f.readRows('r', 0, 1), { shape: [1, 2], data: new Float32Array([1, 2]) });
  assert.deepEqual(f.readRows('r', 3, 0), { shape: [0, 2], data: new Float32Array(0) });
  for (const [s, c, shown] of [[-1, 1, '[-1, 0)'], [0, -1, '[0, -1)'], [2, 2, '[2, 4)'], [4, 0, '[4, 4)']] as const) {
    refused(() => f.readRows('r', s, c), `${p} [r]: rows ${shown} outside [0, 3)`);
  }
  assert.deepEqual(f.readInts('i8'), { shape: [3], data: [-128, 127, -1] });
  assert.deepEqual(f.readInts('i16'), { shape: [3], data: [-32768, 32767, -1] });
  assert.deepEqual(f.readInts('i32'), { shape: [3], data: [-2147483648, 2147483647, -2] });
  assert.deepEqual(f.readInts('i64'), { shape: [3], data: [2 ** 53 - 1, -1, 256] });
  assert.deepEqual(f.readInts('u8'), { shape: [3], data: [0, 128, 255] });
  assert.deepEqual(f.readInts('bool'), { shape: [3], data: [1, 0, 1] });
  refused(() => f.readInts('r'), `${p} [r]: expected an integer tensor, got dtype F16`);
  refused(() => f.readFloat32('u8'), `${p} [u8]: expected a floating-point tensor (F32, F16, BF16, F64), got U8`);
  refused(() => f.readRows('i32', 0, 1), `${p} [i32]: expected a floating-point tensor (F32, F16, BF16, F64), got I32`);
  refused(() => f.info('zz'), `${p} [zz]: no such tensor`);
  refused(() => f.readBytes('zz'), `${p} [zz]: no such tensor`);
  f.close();
  f.close(); // twice is fine
  refused(() => f.readBytes('r'), `${p} [r]: file already closed`);
  refused(() => f.readRows('r', 0, 1), `${p} [r]: file already closed`);
  // A file that shrinks after it was opened: the read stops at the end with the byte it reached.
  const g = SafetensorsFile.open(p);
  fs.truncateSync(p, base + 8);
  refused(() => g.readBytes('r'), `${p} [r]: file ended while reading tensor data at byte ${base + 8}`);
  refused(() => g.readRows('r', 1, 1), `${p} [r]: file ended while reading rows`);
  refused(() => g.readRows('r', 0, 2), `${p} [r]: file ended while reading rows`); // a partial read, then the end
  assert.deepEqual(g.readRows('r', 0, 1), { shape: [1, 2], data: new Float32Array([1, 2]) });
  g.close();
});

test('toFloat32: binary16 (normal, subnormal, inf, NaN, -0), bfloat16 and float64 by hand', () => {
  const h = toFloat32(u16(0x0001, 0x03ff, 0x0400, 0x3555, 0x7bff, 0x7c00, 0xfc00, 0x8000, 0xc000, 0x3bff, 0x8001), 'F16', 'x', 'k');
  assert.deepEqual([...h], [2 ** -24, 1023 * 2 ** -24, 2 ** -14, 0.333251953125, 65504, Infinity, -Infinity, -0, -2, 1 - 2 ** -11, -(2 ** -24)]);
  assert.ok(Object.is(h[7], -0));
  for (const nan of [0x7c01, 0x7e00, 0xfe00, 0x7fff]) assert.ok(Number.isNaN(toFloat32(u16(nan), 'F16', 'x', 'k')[0]), nan.toString(16));
  const b = toFloat32(u16(0x3f80, 0xc040, 0x7f80, 0x0001, 0x3e20, 0x8000), 'BF16', 'x', 'k');
  assert.deepEqual([...b], [1, -3, Infinity, 2 ** -133, 0.15625, -0]);
  const d = Buffer.alloc(24);
  d.writeDoubleLE(0.1, 0); d.writeDoubleLE(-1e300, 8); d.writeDoubleLE(3.5, 16);
  assert.deepEqual([...toFloat32(d, 'F64', 'x', 'k')], [Math.fround(0.1), -Infinity, 3.5]);
  assert.deepEqual([...toFloat32(f32(0.5, -7), 'F32', 'x', 'k')], [0.5, -7]);
  // A buffer that is a window of a larger one (Node's pooled buffers): only its bytes are read.
  const big = Buffer.concat([Buffer.from([0xff, 0xff]), u16(0x3c00, 0x4000), f32(9)]);
  assert.deepEqual([...toFloat32(big.subarray(2, 6), 'F16', 'x', 'k')], [1, 2]);
  assert.deepEqual([...toFloat32(big.subarray(2, 6), 'BF16', 'x', 'k')], [2 ** -7, 2]);
  for (const dt of ['I64', 'I32', 'I16', 'I8', 'U8', 'BOOL'] as const) {
    refused(() => toFloat32(Buffer.alloc(8), dt, 'file.bin', 'key'), `file.bin [key]: expected a floating-point tensor (F32, F16, BF16, F64), got ${dt}`);
  }
});

test('writeSafetensors: the exact bytes (length, JSON header padded with spaces to 8, data in order)', () => {
  const p = path.join(tmp, 'w.safetensors');
  writeSafetensors(p, {
    a: { shape: [2], data: new Float32Array([1, -2]) },
    b: { shape: [1, 3], data: new Uint8Array([1, 2, 3]) },
    c: { shape: [], data: new BigInt64Array([-5n]) },
  }, { k: 'vv' });
  const json = '{"__metadata__":{"k":"vv"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[1,3],"data_offsets":[8,11]},"c":{"dtype":"I64","shape":[],"data_offsets":[11,19]}}';
  const padded = json + ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(padded.length));
  const want = Buffer.concat([len, Buffer.from(padded), f32(1, -2), Buffer.from([1, 2, 3]), Buffer.from([0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff])]);
  assert.equal(padded.length % 8, 0);
  assert.equal(json.length % 8, 5); // 3 bytes of padding
  assert.deepEqual(fs.readFileSync(p), want);
  // A header whose JSON is already a multiple of 8 gets no padding; no metadata, no __metadata__ key.
  const q = path.join(tmp, 'w2.safetensors');
  writeSafetensors(q, { abcdefghijklmnopqrst: { shape: [1], data: new Uint8Array([4]) } });
  const json2 = '{"abcdefghijklmnopqrst":{"dtype":"U8","shape":[1],"data_offsets":[0,1]}}';
  assert.equal(json2.length % 8, 0);
  assert.deepEqual(fs.readFileSync(q), Buffer.concat([Buffer.from([json2.length, 0, 0, 0, 0, 0, 0, 0]), Buffer.from(json2), Buffer.from([4])]));
  // A window of a larger array writes only the window.
  const r = path.join(tmp, 'w3.safetensors');
  writeSafetensors(r, { x: { shape: [2], data: new Float32Array([9, 1, 2, 9]).subarray(1, 3) } });
  assert.deepEqual(fs.readFileSync(r).subarray(-8), f32(1, 2));
  assert.throws(() => writeSafetensors(r, { x: { shape: [3], data: new Float32Array(2) } }), { message: 'writeSafetensors: x shape [3] does not match its data' });
  assert.throws(() => writeSafetensors(r, { y: { shape: [2, 2], data: new Uint8Array(3) } }), { message: 'writeSafetensors: y shape [2,2] does not match its data' });
  // readAllFloat32: float tensors only.
  const all = path.join(tmp, 'all.safetensors');
  fs.writeFileSync(all, fs.readFileSync(stFile({ h: { dtype: 'F16', shape: [1], data_offsets: [0, 2] }, i: { dtype: 'I32', shape: [1], data_offsets: [2, 6] }, g: { dtype: 'BF16', shape: [1], data_offsets: [6, 8] }, d: { dtype: 'F64', shape: [1], data_offsets: [8, 16] }, u: { dtype: 'U8', shape: [1], data_offsets: [16, 17] }, f: { dtype: 'F32', shape: [1], data_offsets: [17, 21] } },
    Buffer.concat([u16(0x3c00), Buffer.alloc(4), u16(0x4000), Buffer.from([0, 0, 0, 0, 0, 0, 0x08, 0x40]), Buffer.from([1]), f32(4)]))));
  const fds = openFds();
  assert.deepEqual(readAllFloat32(all), { h: { shape: [1], data: new Float32Array([1]) }, g: { shape: [1], data: new Float32Array([2]) }, d: { shape: [1], data: new Float32Array([3]) }, f: { shape: [1], data: new Float32Array([4]) } });
  assert.equal(openFds(), fds, 'readAllFloat32 closes its file');
});

test('SafetensorsWriter: header first (F32, padded), file sized up front, rows land at their offsets', () => {
  const p = path.join(tmp, 'rows.safetensors');
  const w = new SafetensorsWriter(p, [{ name: 'm', shape: [3, 2] }, { name: 's', shape: [] }, { name: 'z', shape: [0, 4] }], { src: 'x' });
  const json = '{"__metadata__":{"src":"x"},"m":{"dtype":"F32","shape":[3,2],"data_offsets":[0,24]},"s":{"dtype":"F32","shape":[],"data_offsets":[24,28]},"z":{"dtype":"F32","shape":[0,4],"data_offsets":[28,28]}}';
  const hl = json.length + ((8 - (json.length % 8)) % 8);
  assert.equal(fs.statSync(p).size, 8 + hl + 28);
  w.writeRows('m', 2, new Float32Array([5, 6]));
  w.writeRows('m', 0, new Float32Array([1, 2, 3, 4]));
  w.writeRows('s', 0, new Float32Array([7]));
  w.writeRows('z', 0, new Float32Array(0));
  assert.throws(() => w.writeRows('m', 2, new Float32Array([1, 2, 3, 4])), { message: 'SafetensorsWriter: rows past the end of m' });
  assert.throws(() => w.writeRows('s', 1, new Float32Array([1])), { message: 'SafetensorsWriter: rows past the end of s' });
  assert.throws(() => w.writeRows('q', 0, new Float32Array(1)), { message: 'SafetensorsWriter: no tensor q' });
  w.writeRows('m', 1, new Float32Array([0, 3, 4, 0]).subarray(1, 3));
  const fds = openFds();
  w.close();
  if (fds >= 0) assert.equal(openFds(), fds - 1, 'close() closes the file');
  const b = fs.readFileSync(p);
  assert.equal(b.readBigUInt64LE(0), BigInt(hl));
  assert.equal(b.toString('utf8', 8, 8 + hl), json + ' '.repeat(hl - json.length));
  assert.deepEqual(b.subarray(8 + hl), f32(1, 2, 3, 4, 5, 6, 7));
  // Without metadata there is no __metadata__ key.
  const q = path.join(tmp, 'rows2.safetensors');
  new SafetensorsWriter(q, [{ name: 'v', shape: [1] }]).close();
  const j2 = '{"v":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}';
  assert.equal(fs.readFileSync(q).toString('utf8', 8, 8 + j2.length), j2);
});

test('header length: above 100 MB refused before anything is read, exactly 100 MB read (sparse file; last: 0.5 s)', () => {
  const p = path.join(tmp, 'sparse.safetensors');
  const fd = fs.openSync(p, 'w');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(100_000_001n);
  fs.writeSync(fd, len, 0, 8, 0);
  fs.writeSync(fd, Buffer.from('{'), 0, 1, 8);
  fs.ftruncateSync(fd, 100_000_020);
  fs.closeSync(fd);
  refused(() => SafetensorsFile.open(p), `${p}: not a safetensors file or truncated: header length 100000001 bytes but the file has 100000020 bytes`);
  // Exactly 100 MB is allowed (read, then refused as JSON: '{' and zeros).
  len.writeBigUInt64LE(100_000_000n);
  const fd2 = fs.openSync(p, 'r+');
  fs.writeSync(fd2, len, 0, 8, 0);
  fs.closeSync(fd2);
  assert.throws(() => SafetensorsFile.open(p), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${p}: header is not valid JSON (`));
  fs.rmSync(p);
});
