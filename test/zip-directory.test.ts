/**
 * The zip central directory reader (src/io/zip.ts) on archives assembled here byte by byte from PKWARE's
 * APPNOTE.TXT: local file header (0x04034b50; name length at +26, extra length at +28, data after 30 + both),
 * central directory header (0x02014b50; method +10, sizes +20 / +24, name / extra / comment lengths +28 / +30 /
 * +32, local header offset +42, name at +46), end of central directory (0x06054b50; disk numbers +4 / +6,
 * entry count +10, directory size +12 and offset +16, comment length +20), ZIP64 end record (0x06064b50:
 * count +32, size +40, offset +48, all 8 bytes) and locator (0x07064b50: record offset +8) and the ZIP64
 * extra field (id 1: original size, compressed size, local header offset, each present only when saturated).
 * Milliseconds.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { readAt, readZipDirectory, type ZipMember } from '../src/io/zip.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-zip-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let seq = 0;

interface Member {
  name: string;
  data?: Buffer;
  method?: number;
  /** Central-directory fields (default: the true values). */
  comp?: number; uncomp?: number; local?: number; nameLen?: number; cdExtraLen?: number; cdCommentLen?: number;
  cdExtra?: Buffer; localExtra?: Buffer; cdComment?: Buffer;
  cdSig?: number; localSig?: number;
}
interface Eocd { disk?: number; cdDisk?: number; count?: number; cdSize?: number; cdOffset?: number; comment?: Buffer; commentLen?: number }
interface Z64 { count?: number; cdSize?: number; cdOffset?: number; sig?: number; locatorSig?: number; recordAt?: number }

/** local headers + data, central directory, [ZIP64 record + locator], end record. */
function build(members: Member[], eocd: Eocd = {}, z64?: Z64): { buf: Buffer; locals: number[]; cdOffset: number; cdSize: number } {
  const parts: Buffer[] = [];
  const locals: number[] = [];
  let pos = 0;
  for (const m of members) {
    const name = Buffer.from(m.name, 'utf8');
    const data = m.data ?? Buffer.alloc(0);
    const le = m.localExtra ?? Buffer.alloc(0);
    const lh = Buffer.alloc(30);
    lh.writeUInt32LE(m.localSig ?? 0x04034b50, 0);
    lh.writeUInt16LE(20, 4);
    lh.writeUInt16LE(m.method ?? 0, 8);
    lh.writeUInt32LE(data.length, 18);
    lh.writeUInt32LE(data.length, 22);
    lh.writeUInt16LE(name.length, 26);
    lh.writeUInt16LE(le.length, 28);
    locals.push(pos);
    for (const b of [lh, name, le, data]) { parts.push(b); pos += b.length; }
  }
  const cdOffset = pos;
  members.forEach((m, i) => {
    const name = Buffer.from(m.name, 'utf8');
    const ce = m.cdExtra ?? Buffer.alloc(0);
    const cc = m.cdComment ?? Buffer.alloc(0);
    const n = (m.data ?? Buffer.alloc(0)).length;
    const h = Buffer.alloc(46);
    h.writeUInt32LE(m.cdSig ?? 0x02014b50, 0);
    h.writeUInt16LE(20, 4); h.writeUInt16LE(20, 6);
    h.writeUInt16LE(m.method ?? 0, 10);
    h.writeUInt32LE(m.comp ?? n, 20);
    h.writeUInt32LE(m.uncomp ?? n, 24);
    h.writeUInt16LE(m.nameLen ?? name.length, 28);
    h.writeUInt16LE(m.cdExtraLen ?? ce.length, 30);
    h.writeUInt16LE(m.cdCommentLen ?? cc.length, 32);
    h.writeUInt32LE(m.local ?? locals[i]!, 42);
    for (const b of [h, name, ce, cc]) { parts.push(b); pos += b.length; }
  });
  const cdSize = pos - cdOffset;
  if (z64) {
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(z64.sig ?? 0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(z64.count ?? members.length), 24);
    rec.writeBigUInt64LE(BigInt(z64.count ?? members.length), 32);
    rec.writeBigUInt64LE(BigInt(z64.cdSize ?? cdSize), 40);
    rec.writeBigUInt64LE(BigInt(z64.cdOffset ?? cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(z64.locatorSig ?? 0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(z64.recordAt ?? pos), 8);
    loc.writeUInt32LE(1, 16);
    parts.push(rec, loc);
    pos += 76;
  }
  const comment = eocd.comment ?? Buffer.alloc(0);
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0);
  e.writeUInt16LE(eocd.disk ?? 0, 4);
  e.writeUInt16LE(eocd.cdDisk ?? 0, 6);
  e.writeUInt16LE(eocd.count ?? members.length, 8);
  e.writeUInt16LE(eocd.count ?? members.length, 10);
  e.writeUInt32LE(eocd.cdSize ?? cdSize, 12);
  e.writeUInt32LE(eocd.cdOffset ?? cdOffset, 16);
  e.writeUInt16LE(eocd.commentLen ?? comment.length, 20);
  parts.push(e, comment);
  return { buf: Buffer.concat(parts), locals, cdOffset, cdSize };
}

function save(buf: Buffer): string {
  const p = path.join(tmp, `z${seq++}.zip`);
  fs.writeFileSync(p, buf);
  return p;
}
/** readZipDirectory of the bytes (size: what the caller claims the file holds). */
function dir(buf: Buffer, size = buf.length): { file: string; members: Map<string, ZipMember> } {
  const file = save(buf);
  const fd = fs.openSync(file, 'r');
  try { return { file, members: readZipDirectory(fd, file, size) }; } finally { fs.closeSync(fd); }
}
function refused(buf: Buffer, detail: (file: string) => string, size?: number): void {
  const file = save(buf);
  const fd = fs.openSync(file, 'r');
  try {
    assert.throws(() => readZipDirectory(fd, file, size ?? buf.length), (e: unknown) => {
      assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
      assert.equal(e.message, `${file}: ${detail(file)}`);
      return true;
    });
  } finally { fs.closeSync(fd); }
}
const bad = (msg: string) => (): string => `not a readable torch zip checkpoint: ${msg}`;
const extra = (id: number, body: Buffer): Buffer => { const h = Buffer.alloc(4); h.writeUInt16LE(id, 0); h.writeUInt16LE(body.length, 2); return Buffer.concat([h, body]); };
const u64s = (...v: number[]): Buffer => { const b = Buffer.alloc(8 * v.length); v.forEach((x, i) => b.writeBigUInt64LE(BigInt(x), 8 * i)); return b; };

test('members: data offset from the LOCAL header (its own name and extra lengths), sizes, methods, comments', () => {
  const { buf, locals } = build([
    { name: 'archive/data.pkl', data: Buffer.from('abc'), localExtra: Buffer.alloc(13, 7), cdComment: Buffer.from('a comment') },
    { name: 'archive/data/0', data: Buffer.from('0123456789'), cdExtra: extra(0x5455, Buffer.alloc(5)) },
    { name: 'z', data: Buffer.from('xyz'), method: 8, uncomp: 100 },
  ], { comment: Buffer.from('archive comment') });
  const { members } = dir(buf);
  assert.deepEqual([...members.values()], [
    { name: 'archive/data.pkl', offset: locals[0]! + 30 + 16 + 13, size: 3, method: 0 },
    { name: 'archive/data/0', offset: locals[1]! + 30 + 14, size: 10, method: 0 },
    { name: 'z', offset: locals[2]! + 30 + 1, size: 100, method: 8 },
  ]);
  assert.equal(buf.toString('latin1', members.get('archive/data/0')!.offset, members.get('archive/data/0')!.offset + 10), '0123456789');
  // The bare end record (22 bytes, no members) is an empty archive.
  assert.equal(dir(build([]).buf).members.size, 0);
  // A UTF-8 name.
  assert.deepEqual([...dir(build([{ name: 'é/data.pkl', data: Buffer.from('x') }]).buf).members.keys()], ['é/data.pkl']);
});

test('the end record is searched from the end; a signature inside the comment whose own comment would overrun is skipped', () => {
  // The archive comment holds a fake end record (comment length 500: runs past the file) 30 bytes before the end.
  const fake = Buffer.alloc(22);
  fake.writeUInt32LE(0x06054b50, 0);
  fake.writeUInt16LE(7, 10); // 7 members: would fail if taken
  fake.writeUInt16LE(500, 20);
  const comment = Buffer.concat([fake, Buffer.alloc(8, 0x20)]);
  const { buf } = build([{ name: 'a', data: Buffer.from('1') }], { comment });
  assert.deepEqual([...dir(buf).members.keys()], ['a']);
  // The same fake, but its comment length fits exactly: it IS the last record (and its 7 members are not there).
  const fits = Buffer.from(fake);
  fits.writeUInt16LE(8, 20);
  const { buf: b2 } = build([{ name: 'a', data: Buffer.from('1') }], { comment: Buffer.concat([fits, Buffer.alloc(8, 0x20)]) });
  refused(b2, bad('the directory claims 7 members but holds only 0 bytes'));
  // The real record's comment length one byte too long: no record at all.
  const { buf: b3 } = build([{ name: 'a' }], { comment: Buffer.from('xy'), commentLen: 3 });
  refused(b3, bad('no end-of-central-directory record (the file is truncated or not a zip archive)'));
  refused(Buffer.alloc(100), bad('no end-of-central-directory record (the file is truncated or not a zip archive)'));
  // A record at byte 0 of a 22-byte file is found (the search reaches index 0).
  assert.equal(dir(build([]).buf).members.size, 0);
  refused(Buffer.alloc(21), bad('21 bytes is too short for a zip file (truncated?)'));
  refused(Buffer.alloc(0), bad('0 bytes is too short for a zip file (truncated?)'));
  // The caller's size is larger than the file: the tail read reports where the file ended.
  const small = build([]).buf;
  refused(small, () => 'file ended at byte 22 while reading the zip directory (truncated)', 40);
});

test('end record fields: spanned archives, directory bounds, member count against directory size', () => {
  const one = [{ name: 'a', data: Buffer.from('12') }];
  refused(build(one, { disk: 1 }).buf, bad('spanned (multi-disk) archives are not supported'));
  refused(build(one, { cdDisk: 2 }).buf, bad('spanned (multi-disk) archives are not supported'));
  const { buf, cdOffset, cdSize } = build(one);
  const size = buf.length;
  refused(build(one, { cdOffset: cdOffset + 23 }).buf, bad(`central directory (${cdSize} bytes at byte ${cdOffset + 23}) lies outside the ${size}-byte file (truncated?)`));
  // Ending exactly at the end of the file is inside it (here: a directory that runs over the end record).
  const endAt = build(one, { cdSize: size - cdOffset });
  assert.deepEqual([...dir(endAt.buf).members.keys()], ['a']);
  refused(build(one, { cdSize: size - cdOffset + 1 }).buf, bad(`central directory (${size - cdOffset + 1} bytes at byte ${cdOffset}) lies outside the ${size}-byte file (truncated?)`));
  // 46 bytes per member at least.
  refused(build(one, { count: 2 }).buf, bad(`the directory claims 2 members but holds only ${cdSize} bytes`));
  // 46 bytes a member at least: 94 bytes hold 2 members, not 3.
  const two = build([{ name: 'a' }, { name: 'b' }]);
  assert.equal(two.cdSize, 94);
  refused(build([{ name: 'a' }, { name: 'b' }], { count: 3 }).buf, bad('the directory claims 3 members but holds only 94 bytes'));
  const exact = build([{ name: 'a' }, { name: 'b' }], { cdSize: 92 }); // 92 bytes: entry 1's fixed part starts at 47
  refused(exact.buf, bad('central directory entry 1 is malformed'));
});

test('central directory entries: signature, room for the fixed part, lengths inside the directory', () => {
  refused(build([{ name: 'a', cdSig: 0x02014b51 }]).buf, bad('central directory entry 0 is malformed'));
  refused(build([{ name: 'a' }, { name: 'b', cdSig: 0x04034b50 }]).buf, bad('central directory entry 1 is malformed'));
  // Two members claimed, 96 bytes of directory: the second entry's 46 fixed bytes are not there.
  const long = 'n'.repeat(50);
  const { buf } = build([{ name: long }], { count: 2 });
  refused(buf, bad('central directory entry 1 is malformed'));
  refused(build([{ name: 'abc', nameLen: 4 }]).buf, bad('central directory entry 0 runs past the directory'));
  refused(build([{ name: 'abc', cdExtraLen: 1 }]).buf, bad('central directory entry 0 runs past the directory'));
  refused(build([{ name: 'abc', cdCommentLen: 1 }]).buf, bad('central directory entry 0 runs past the directory'));
  refused(build([{ name: 'abc', cdExtra: Buffer.alloc(4), cdCommentLen: 1 }]).buf, bad('central directory entry 0 runs past the directory'));
  // An entry of exactly 46 bytes (empty name) fills the directory exactly.
  assert.deepEqual([...dir(build([{ name: '', data: Buffer.from('e') }]).buf).members.values()], [{ name: '', offset: 30, size: 1, method: 0 }]);
  // The name ends exactly at the end of the directory: fine.
  assert.deepEqual([...dir(build([{ name: 'abc' }]).buf).members.keys()], ['abc']);
  // A second entry after one with an extra field AND a comment starts where both end.
  const both = build([{ name: 'p', data: Buffer.from('1'), cdExtra: extra(0xcafe, Buffer.alloc(2)), cdComment: Buffer.from('cc') }, { name: 'q', data: Buffer.from('22') }]);
  assert.deepEqual([...dir(both.buf).members.values()].map((m) => [m.name, m.size]), [['p', 1], ['q', 2]]);
});

test('extra fields: skipped unless ZIP64 (id 1), whose 8-byte values replace only the saturated fields, in order', () => {
  const data = Buffer.from('0123456789abcdef'); // 16 bytes
  const base = build([{ name: 'pad', data: Buffer.alloc(5) }, { name: 'm', data }]);
  const local = base.locals[1]!;
  const sat = 0xffffffff;
  // All three saturated: original size, compressed size, local offset follow in that order.
  const all = build([{ name: 'pad', data: Buffer.alloc(5) }, { name: 'm', data, uncomp: sat, comp: sat, local: sat, cdExtra: Buffer.concat([extra(0x5455, Buffer.alloc(3)), extra(1, u64s(16, 16, local))]) }]);
  assert.deepEqual(dir(all.buf).members.get('m'), { name: 'm', offset: local + 31, size: 16, method: 0 });
  // Only the compressed size and offset saturated: the first value is the compressed size.
  const two = build([{ name: 'pad', data: Buffer.alloc(5) }, { name: 'm', data, method: 8, uncomp: 40, comp: sat, local: sat, cdExtra: extra(1, u64s(16, local)) }]);
  assert.deepEqual(dir(two.buf).members.get('m'), { name: 'm', offset: local + 31, size: 40, method: 8 });
  // Only the offset.
  const off = build([{ name: 'pad', data: Buffer.alloc(5) }, { name: 'm', data, local: sat, cdExtra: extra(1, u64s(local)) }]);
  assert.equal(dir(off.buf).members.get('m')!.offset, local + 31);
  // Only the original size (method 8: sizes may differ).
  const orig = build([{ name: 'm', data, method: 8, uncomp: sat, cdExtra: extra(1, u64s(1234)) }]);
  assert.equal(dir(orig.buf).members.get('m')!.size, 1234);
  // Nothing saturated: a ZIP64 field is ignored.
  const none = build([{ name: 'm', data, cdExtra: extra(1, u64s(99, 99, 99)) }]);
  assert.deepEqual(dir(none.buf).members.get('m'), { name: 'm', offset: 31, size: 16, method: 0 });
  // Fewer than 4 bytes left in the extra area: no further field.
  const tail = build([{ name: 'm', data, cdExtra: Buffer.concat([extra(0x7875, Buffer.alloc(2)), Buffer.from([1, 0, 8])]) }]);
  assert.equal(dir(tail.buf).members.get('m')!.size, 16);
  // Refusals.
  refused(build([{ name: 'm', data, cdExtra: Buffer.concat([extra(0x5455, Buffer.alloc(2)).subarray(0, 4), Buffer.alloc(1)]) }]).buf, bad('extra field of m runs past its entry'));
  const over = extra(0x5455, Buffer.alloc(2));
  over.writeUInt16LE(3, 2);
  refused(build([{ name: 'm', data, cdExtra: over }]).buf, bad('extra field of m runs past its entry'));
  refused(build([{ name: 'm', data, uncomp: sat, comp: sat, cdExtra: extra(1, u64s(16)) }]).buf, bad('ZIP64 field of m is too short'));
  refused(build([{ name: 'm', data, local: sat, cdExtra: extra(1, Buffer.alloc(7)) }]).buf, bad('ZIP64 field of m is too short'));
  // A ZIP64 field of 4 bytes (no values) at the very end of the extra area is still read.
  refused(build([{ name: 'm', data, local: sat, cdExtra: extra(1, Buffer.alloc(0)) }]).buf, bad('ZIP64 field of m is too short'));
});

test('local headers and member data must lie inside the file; stored members have equal sizes', () => {
  const data = Buffer.from('0123');
  const { buf } = build([{ name: 'a', data }]);
  const size = buf.length;
  refused(build([{ name: 'a', data, local: size - 29 }]).buf, bad(`member a's header at byte ${size - 29} lies outside the ${size}-byte file (truncated?)`));
  // Exactly 30 bytes before the end: the header is read (and its signature is wrong: these are directory bytes).
  refused(build([{ name: 'a', data, local: size - 30 }]).buf, bad(`member a has no local header at byte ${size - 30}`));
  refused(build([{ name: 'a', data, localSig: 0x02014b50 }]).buf, bad('member a has no local header at byte 0'));
  refused(build([{ name: 'a', data, comp: 3 }]).buf, bad('stored member a has different compressed (3) and uncompressed (4) sizes'));
  refused(build([{ name: 'a', data, uncomp: 5 }]).buf, bad('stored member a has different compressed (4) and uncompressed (5) sizes'));
  // A compressed member's data may reach the end of the file exactly, not one byte past it.
  const reach = size - 31;
  assert.deepEqual(dir(build([{ name: 'a', data, method: 8, comp: reach }]).buf).members.get('a'), { name: 'a', offset: 31, size: 4, method: 8 });
  refused(build([{ name: 'a', data, method: 8, comp: reach + 1 }]).buf, bad(`member a (${reach + 1} bytes at byte 31) runs past the end of the ${size}-byte file (truncated)`));
  // A ZIP64 size beyond 2^53 is not a safe integer: refused, not wrapped.
  const huge = build([{ name: 'a', data, method: 8, comp: 0xffffffff, cdExtra: extra(1, Buffer.from([0, 0, 0, 0, 0, 0, 0x30, 0])) }]);
  refused(huge.buf, bad(`member a (${2 ** 53 + 2 ** 52} bytes at byte 31) runs past the end of the ${huge.buf.length}-byte file (truncated)`));
});

test('ZIP64: any saturated end-record field sends the reader to the locator and the ZIP64 record', () => {
  const ms = [{ name: 'a', data: Buffer.from('aa') }, { name: 'b', data: Buffer.from('bbb') }];
  const want = [['a', 2], ['b', 3]];
  for (const eocd of [{ count: 0xffff }, { cdSize: 0xffffffff }, { cdOffset: 0xffffffff }, { count: 0xffff, cdSize: 0xffffffff, cdOffset: 0xffffffff }]) {
    const { buf } = build(ms, eocd, {});
    assert.deepEqual([...dir(buf).members.values()].map((m) => [m.name, m.size]), want, JSON.stringify(eocd));
  }
  // The ZIP64 record's own values are used (here: only the first member counted).
  assert.deepEqual([...dir(build(ms, { count: 0xffff }, { count: 1 }).buf).members.keys()], ['a']);
  // Without a saturated field the ZIP64 record is not read (its count of 1 is ignored).
  assert.equal(dir(build(ms, {}, { count: 1 }).buf).members.size, 2);
  refused(build(ms, { count: 0xffff }, { locatorSig: 0x07064b51 }).buf, bad('ZIP64 locator missing'));
  refused(build(ms, { count: 0xffff }, { sig: 0x06064b51 }).buf, bad('ZIP64 end-of-central-directory record missing'));
  const { buf } = build(ms, { count: 0xffff }, {});
  const size = buf.length;
  refused(build(ms, { count: 0xffff }, { recordAt: size - 55 }).buf, bad(`ZIP64 record at byte ${size - 55} lies outside the file (truncated?)`));
  // A record position whose 56 bytes end exactly at the end of the file is read (and is not a record).
  refused(build(ms, { count: 0xffff }, { recordAt: size - 56 }).buf, bad('ZIP64 end-of-central-directory record missing'));
  // An end record at byte 0 has no room for a locator before it.
  refused(build([], { count: 0xffff }).buf, bad('ZIP64 locator missing (truncated?)'));
  // Exactly 20 bytes before it: the locator is read (here: zeros).
  refused(Buffer.concat([Buffer.alloc(20), build([], { count: 0xffff }).buf]), bad('ZIP64 locator missing'));
  refused(build(ms, { count: 0xffff }, { cdSize: 2 ** 31 }).buf, bad(`central directory (${2 ** 31} bytes at byte ${build(ms).cdOffset}) lies outside the ${size}-byte file (truncated?)`));
});

test('a central directory over 1 GiB is refused before it is read (sparse file)', () => {
  const p = path.join(tmp, 'huge.zip');
  const size = 2 ** 30 + 100;
  const fd = fs.openSync(p, 'w');
  const e = Buffer.alloc(22);
  e.writeUInt32LE(0x06054b50, 0);
  e.writeUInt16LE(1, 8); e.writeUInt16LE(1, 10);
  e.writeUInt32LE(2 ** 30 + 1, 12);
  fs.writeSync(fd, e, 0, 22, size - 22);
  fs.closeSync(fd);
  const rd = fs.openSync(p, 'r');
  try {
    assert.throws(() => readZipDirectory(rd, p, size), { message: `${p}: not a readable torch zip checkpoint: central directory (${2 ** 30 + 1} bytes at byte 0) lies outside the ${size}-byte file (truncated?)` });
  } finally { fs.closeSync(rd); fs.rmSync(p); }
});

test('readAt: reads exactly the range, or names the byte where the file ended', () => {
  const p = save(Buffer.from('0123456789'));
  const fd = fs.openSync(p, 'r');
  try {
    assert.equal(readAt(fd, p, 3, 4, 'x').toString(), '3456');
    assert.equal(readAt(fd, p, 10, 0, 'x').length, 0);
    assert.throws(() => readAt(fd, p, 8, 4, 'the thing'), { message: `${p}: file ended at byte 10 while reading the thing (truncated)` });
    assert.throws(() => readAt(fd, p, 12, 1, 'y'), { message: `${p}: file ended at byte 12 while reading y (truncated)` });
  } finally { fs.closeSync(fd); }
});
