/**
 * PNG text chunks and image-file edge cases, byte for byte against the PNG specification (ISO/IEC 15948: chunk =
 * length, type, body, CRC-32 of type + body; tEXt = keyword NUL Latin-1 text; zTXt = keyword NUL method zlib;
 * iTXt = keyword NUL flag method language NUL translated-keyword NUL UTF-8 text), with PNGs assembled here by hand.
 * Pure buffers plus a few tiny files: milliseconds (mutation slice io-images).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { deflateSync } from 'node:zlib';
import { FileFormatError, InputError } from '../src/errors.js';
import { PNG_SIGNATURE, pngChunk } from './png-chunks.js';
import { assertRGB, encodePNG, insertPNGText, parsePNGText, readImageRGB, writePNG } from '../src/io/image.js';

const SIG = PNG_SIGNATURE;
const chunk = pngChunk;
const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');
/** IHDR of a 1x1 8-bit RGB image: 13 body bytes, so the chunk is 25 bytes and ends at byte 33. */
const IHDR = chunk('IHDR', Buffer.from([0, 0, 0, 1, 0, 0, 0, 1, 8, 2, 0, 0, 0]));
const IEND = chunk('IEND', Buffer.alloc(0));
const png = (...chunks: Buffer[]): Buffer => Buffer.concat([SIG, IHDR, ...chunks, IEND]);

function refused(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => e instanceof FileFormatError && e.message === message, message);
}

test('PNG text keywords: 1-79 printable Latin-1 characters, no leading, trailing or double spaces', () => {
  const base = png();
  for (const key of ['k', 'x'.repeat(79), 'a b', 'caf\xe9', '\xa1\xff', '~!']) {
    assert.deepEqual(parsePNGText(insertPNGText(base, { [key]: 'v' })), { [key]: 'v' }, JSON.stringify(key));
  }
  for (const key of ['', 'x'.repeat(80), ' a', 'a ', 'a  b', '\x1fab', 'ab\x1f', 'a\x7fb', '\xa0', 'k\u0101', 'k\n']) {
    assert.throws(() => insertPNGText(base, { [key]: 'v' }),
      (e: unknown) => e instanceof InputError && e.message === `PNG text keyword ${JSON.stringify(key)} is not 1-79 printable Latin-1 characters`, JSON.stringify(key));
  }
});

test('text chunks are tEXt for Latin-1 values, else uncompressed iTXt, inserted right after IHDR in order', () => {
  const out = insertPNGText(png(), { a: 'v\xff', b: 'caf\u0101 \u2713', c: 'nul\0inside' });
  const iTXt = (k: string, v: string): Buffer => chunk('iTXt', Buffer.concat([latin1(k), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(v, 'utf8')]));
  assert.deepEqual(out, png(chunk('tEXt', latin1('a\0v\xff')), iTXt('b', 'caf\u0101 \u2713'), iTXt('c', 'nul\0inside')));
  assert.deepEqual(parsePNGText(out), { a: 'v\xff', b: 'caf\u0101 \u2713', c: 'nul\0inside' });
  // The smallest PNG with an IHDR (signature + IHDR chunk = 33 bytes) is accepted; anything else is refused.
  const minimal = Buffer.concat([SIG, IHDR]);
  assert.deepEqual(insertPNGText(minimal, { k: 'v' }), Buffer.concat([SIG, IHDR, chunk('tEXt', latin1('k\0v'))]));
  const notPng = (b: Buffer): void => assert.throws(() => insertPNGText(b, { k: 'v' }), { message: 'insertPNGText: not a PNG starting with IHDR' });
  notPng(minimal.subarray(0, 32));
  notPng(Buffer.concat([Buffer.from([0x88]), minimal.subarray(1)]));
  notPng(Buffer.concat([SIG, chunk('IHDX', Buffer.alloc(13))]));
});

test('parsePNGText: tEXt, zTXt, compressed and plain iTXt with language tags; first keyword wins; stops at IEND', () => {
  const z = chunk('zTXt', Buffer.concat([latin1('zk\0\0'), deflateSync(latin1('zipped \xe9'))]));
  const itz = chunk('iTXt', Buffer.concat([latin1('ik\0'), Buffer.from([1, 0]), latin1('en\0Titel\0'), deflateSync(Buffer.from('\u00fc \u2713', 'utf8'))]));
  const itp = chunk('iTXt', Buffer.concat([latin1('ip\0'), Buffer.from([0, 0]), latin1('de-DE\0Schl\xfcssel\0'), Buffer.from('gr\u00fc\u00df', 'utf8')]));
  const first = chunk('tEXt', latin1('k\0first'));
  const second = chunk('tEXt', latin1('k\0second'));
  const after = chunk('tEXt', latin1('late\0after IEND'));
  const file = Buffer.concat([png(z, itz, itp, first, second), after]);
  assert.deepEqual(parsePNGText(file), { zk: 'zipped \xe9', ik: '\u00fc \u2713', ip: 'gr\u00fc\u00df', k: 'first' });
  // No IEND: the chunks up to the end are read; a bare signature has none.
  assert.deepEqual(parsePNGText(Buffer.concat([SIG, IHDR, first])), { k: 'first' });
  assert.deepEqual(parsePNGText(SIG), {});
  // A CRC is checked only on text chunks (a damaged IHDR CRC is not ours to judge).
  assert.deepEqual(parsePNGText(Buffer.concat([SIG, chunk('IHDR', Buffer.alloc(13), 0), first])), { k: 'first' });
});

test('parsePNGText refusals name the file, the chunk and its byte offset', () => {
  refused(() => parsePNGText(Buffer.from('GIF89a..')), '<buffer>: not a PNG (bad signature)');
  refused(() => parsePNGText(SIG.subarray(0, 7), 'a.png'), 'a.png: not a PNG (bad signature)');
  refused(() => parsePNGText(Buffer.concat([SIG, IHDR.subarray(0, 11)]), 'a.png'), 'a.png: truncated PNG: chunk header at byte 8 runs past the end');
  const t = chunk('tEXt', latin1('k\0value'));
  refused(() => parsePNGText(Buffer.concat([SIG, IHDR, t.subarray(0, t.length - 1)]), 'a.png'), 'a.png: truncated PNG: chunk tEXt at byte 33 needs 7 bytes');
  refused(() => parsePNGText(Buffer.concat([SIG, IHDR, t.subarray(0, 12)]), 'a.png'), 'a.png: truncated PNG: chunk tEXt at byte 33 needs 7 bytes');
  refused(() => parsePNGText(png(chunk('tEXt', latin1('k\0value'), 1)), 'a.png'), 'a.png: chunk tEXt at byte 33 has a bad CRC');
  refused(() => parsePNGText(png(chunk('tEXt', latin1('\0value'))), 'a.png'), 'a.png: chunk tEXt at byte 33 has no keyword');
  refused(() => parsePNGText(png(chunk('zTXt', latin1('novalue'))), 'a.png'), 'a.png: chunk zTXt at byte 33 has no keyword');
  refused(() => parsePNGText(png(chunk('iTXt', Buffer.concat([latin1('k\0'), Buffer.from([0, 0]), latin1('en')]))), 'a.png'), 'a.png: chunk iTXt at byte 33 is malformed');
  refused(() => parsePNGText(png(chunk('iTXt', Buffer.concat([latin1('k\0'), Buffer.from([0, 0]), latin1('en\0no-end')]))), 'a.png'), 'a.png: chunk iTXt at byte 33 is malformed');
  assert.throws(() => parsePNGText(png(chunk('zTXt', latin1('k\0\0not zlib'))), 'a.png'),
    (e: unknown) => e instanceof FileFormatError && e.message.startsWith('a.png: chunk zTXt: bad compressed text (') && /header/.test(e.message));
  assert.throws(() => parsePNGText(png(chunk('iTXt', Buffer.concat([latin1('k\0'), Buffer.from([1, 0]), latin1('\0\0not zlib')]))), 'a.png'),
    (e: unknown) => e instanceof FileFormatError && e.message.startsWith('a.png: chunk iTXt: bad compressed text ('));
});

test('image files: unreadable paths, sharp\'s first message line, bad RGB buffers and unwritable outputs', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-png-text-'));
  try {
    await assert.rejects(readImageRGB(dir), (e: unknown) => e instanceof FileFormatError && e.message === `${dir}: cannot read: EISDIR`);
    const text = path.join(dir, 'notes.png');
    fs.writeFileSync(text, 'not a picture');
    await assert.rejects(readImageRGB(text), (e: unknown) => e instanceof FileFormatError && e.message === `${text}: not an image or damaged (sharp: Input buffer contains unsupported image format)`);
    const img = { width: 2, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6]) };
    await assert.rejects(writePNG(path.join(dir, 'missing', 'out.png'), img), (e: unknown) => e instanceof InputError && e.message === `cannot write ${path.join(dir, 'missing', 'out.png')}: ENOENT`);
    // no text chunks: the encoder's own bytes
    assert.deepEqual(parsePNGText(await encodePNG(img, {})), {});
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  assertRGB({ width: 1, height: 1, data: new Uint8Array(3) });
  const bad = (im: { width: number; height: number; data: Uint8Array }, message: string, what?: string): void => assert.throws(() => assertRGB(im, what), { message });
  bad({ width: 0, height: 1, data: new Uint8Array(0) }, 'image: bad size 0x1');
  bad({ width: 1, height: 0, data: new Uint8Array(0) }, 'mask: bad size 1x0', 'mask');
  bad({ width: 1.5, height: 2, data: new Uint8Array(9) }, 'image: bad size 1.5x2');
  bad({ width: 2, height: 2.5, data: new Uint8Array(15) }, 'image: bad size 2x2.5');
  bad({ width: -1, height: -1, data: new Uint8Array(3) }, 'image: bad size -1x-1');
  bad({ width: 2, height: 1, data: new Uint8Array(5) }, 'image: 2x1 RGB needs 6 bytes, got 5');
  bad({ width: 2, height: 3, data: new Uint8Array(12) }, 'image: 2x3 RGB needs 18 bytes, got 12');
});
