/**
 * The central directory of a zip file (what torch.save writes: stored members, ZIP64 for large
 * files), read with positioned reads so member data stays on disk. Compressed members, spanned
 * archives and anything that points outside the file are refused as FileFormatErrors.
 */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';

export interface ZipMember {
  readonly name: string;
  /** Absolute offset of the first data byte. */
  readonly offset: number;
  readonly size: number;
  /** 0 = stored. */
  readonly method: number;
}

const EOCD_SIG = 0x06054b50;
const ZIP64_LOCATOR_SIG = 0x07064b50;
const ZIP64_EOCD_SIG = 0x06064b50;
const CENTRAL_SIG = 0x02014b50;
const LOCAL_SIG = 0x04034b50;
/** Largest central directory read into memory (about 10 million members). */
const MAX_CENTRAL_BYTES = 1 << 30;

export function readAt(fd: number, file: string, offset: number, length: number, what: string): Buffer {
  const buf = Buffer.allocUnsafe(length); // filled below, or an error is thrown
  let done = 0;
  while (done < length) {
    const n = fs.readSync(fd, buf, done, length - done, offset + done);
    if (n === 0) throw new FileFormatError(file, `file ended at byte ${offset + done} while reading ${what} (truncated)`);
    done += n;
  }
  return buf;
}

/** Members by name. `size` is the file size (every offset is checked against it). */
export function readZipDirectory(fd: number, file: string, size: number): Map<string, ZipMember> {
  const bad = (msg: string): never => { throw new FileFormatError(file, `not a readable torch zip checkpoint: ${msg}`); };
  if (size < 22) bad(`${size} bytes is too short for a zip file (truncated?)`);
  // The end-of-central-directory record: 22 bytes plus a comment of up to 65535.
  const tailLen = Math.min(size, 22 + 65535);
  const tail = readAt(fd, file, size - tailLen, tailLen, 'the zip directory');
  let eocd = -1;
  for (let i = tailLen - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === EOCD_SIG && i + 22 + tail.readUInt16LE(i + 20) <= tailLen) { eocd = i; break; }
  }
  if (eocd < 0) bad('no end-of-central-directory record (the file is truncated or not a zip archive)');
  let count: number = tail.readUInt16LE(eocd + 10);
  let cdSize: number = tail.readUInt32LE(eocd + 12);
  let cdOffset: number = tail.readUInt32LE(eocd + 16);
  if (tail.readUInt16LE(eocd + 4) !== 0 || tail.readUInt16LE(eocd + 6) !== 0) bad('spanned (multi-disk) archives are not supported');
  if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    const locAt = size - tailLen + eocd - 20;
    if (locAt < 0) bad('ZIP64 locator missing (truncated?)');
    const loc = readAt(fd, file, locAt, 20, 'the ZIP64 locator');
    if (loc.readUInt32LE(0) !== ZIP64_LOCATOR_SIG) bad('ZIP64 locator missing');
    const z64At = Number(loc.readBigUInt64LE(8));
    if (!(z64At >= 0 && z64At + 56 <= size)) bad(`ZIP64 record at byte ${z64At} lies outside the file (truncated?)`);
    const z = readAt(fd, file, z64At, 56, 'the ZIP64 record');
    if (z.readUInt32LE(0) !== ZIP64_EOCD_SIG) bad('ZIP64 end-of-central-directory record missing');
    count = Number(z.readBigUInt64LE(32));
    cdSize = Number(z.readBigUInt64LE(40));
    cdOffset = Number(z.readBigUInt64LE(48));
  }
  if (!(cdSize <= MAX_CENTRAL_BYTES && cdOffset + cdSize <= size)) bad(`central directory (${cdSize} bytes at byte ${cdOffset}) lies outside the ${size}-byte file (truncated?)`);
  if (count * 46 > cdSize) bad(`the directory claims ${count} members but holds only ${cdSize} bytes`);
  const cd = readAt(fd, file, cdOffset, cdSize, 'the zip central directory');
  const members = new Map<string, ZipMember>();
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + 46 > cd.length || cd.readUInt32LE(p) !== CENTRAL_SIG) bad(`central directory entry ${i} is malformed`);
    const method = cd.readUInt16LE(p + 10);
    let compSize = cd.readUInt32LE(p + 20);
    let uncompSize = cd.readUInt32LE(p + 24);
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    let local = cd.readUInt32LE(p + 42);
    if (p + 46 + nameLen + extraLen + commentLen > cd.length) bad(`central directory entry ${i} runs past the directory`);
    const name = cd.toString('utf8', p + 46, p + 46 + nameLen);
    // ZIP64 extended information: 8-byte values for the fields saturated at 0xffffffff, in this order.
    let e = p + 46 + nameLen;
    const extraEnd = e + extraLen;
    while (e + 4 <= extraEnd) {
      const id = cd.readUInt16LE(e);
      const len = cd.readUInt16LE(e + 2);
      if (e + 4 + len > extraEnd) bad(`extra field of ${name} runs past its entry`);
      if (id === 0x0001) {
        let q = e + 4;
        const next = (): number => { if (q + 8 > e + 4 + len) bad(`ZIP64 field of ${name} is too short`); const v = Number(cd.readBigUInt64LE(q)); q += 8; return v; };
        if (uncompSize === 0xffffffff) uncompSize = next();
        if (compSize === 0xffffffff) compSize = next();
        if (local === 0xffffffff) local = next();
      }
      e += 4 + len;
    }
    p = extraEnd + commentLen;
    if (!(local + 30 <= size)) bad(`member ${name}'s header at byte ${local} lies outside the ${size}-byte file (truncated?)`);
    const lh = readAt(fd, file, local, 30, `the header of member ${name}`);
    if (lh.readUInt32LE(0) !== LOCAL_SIG) bad(`member ${name} has no local header at byte ${local}`);
    const offset = local + 30 + lh.readUInt16LE(26) + lh.readUInt16LE(28);
    if (method === 0 && compSize !== uncompSize) bad(`stored member ${name} has different compressed (${compSize}) and uncompressed (${uncompSize}) sizes`);
    if (!(Number.isSafeInteger(offset + compSize) && offset + compSize <= size)) {
      bad(`member ${name} (${compSize} bytes at byte ${offset}) runs past the end of the ${size}-byte file (truncated)`);
    }
    members.set(name, { name, offset, size: uncompSize, method });
  }
  return members;
}
