/**
 * Images in and out: decoding to 8-bit RGB the way PIL's `Image.open(p).convert('RGB')` sees a file, and PNG
 * writing with text chunks (the `parameters` chunk other Stable Diffusion tools write and read back).
 */
import fs from 'node:fs';
import { inflateSync } from 'node:zlib';
import sharp from 'sharp';
import { FileFormatError, InputError } from '../errors.js';

/** An 8-bit image, rows top to bottom, interleaved channels (HWC). */
export interface RGBImage {
  readonly width: number;
  readonly height: number;
  /** width * height * 3 bytes, R G B per pixel. */
  readonly data: Uint8Array;
}

/** Throws if `image.data` does not hold width*height*3 bytes (a programming error, not a user's). */
export function assertRGB(image: RGBImage, what = 'image'): void {
  if (!Number.isInteger(image.width) || !Number.isInteger(image.height) || image.width <= 0 || image.height <= 0) {
    throw new Error(`${what}: bad size ${image.width}x${image.height}`);
  }
  if (image.data.length !== image.width * image.height * 3) {
    throw new Error(`${what}: ${image.width}x${image.height} RGB needs ${image.width * image.height * 3} bytes, got ${image.data.length}`);
  }
}

function firstLine(e: unknown): string {
  return String(e instanceof Error ? e.message : e).split('\n')[0]!.trim();
}

/**
 * Decode any image sharp reads (PNG, JPEG, WebP, GIF, TIFF, AVIF...) to 8-bit RGB.
 * Like PIL's `convert('RGB')`: an alpha channel is dropped as it is (no flattening onto a background, no
 * premultiplying), grey is replicated to R=G=B, embedded ICC profiles are not applied and EXIF orientation is not
 * applied (PIL does neither). Anything unreadable becomes a FileFormatError naming the file.
 */
/** A file's bytes, or a FileFormatError naming it ('no such file', 'cannot read: EACCES'). */
function readBytes(path: string): Buffer {
  try {
    return fs.readFileSync(path);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new FileFormatError(path, code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? firstLine(e)}`);
  }
}

/** The largest image decoded: 8192 x 8192 (64 Mpx, 192 MiB as RGB); larger ones are refused, not decoded. */
export const MAX_IMAGE_SIDE = 8192;
const MAX_IMAGE_PIXELS = MAX_IMAGE_SIDE * MAX_IMAGE_SIDE;

export async function readImageRGB(path: string): Promise<RGBImage> {
  // Read the bytes ourselves: a clean error for a missing file, and no stale copy from sharp's file cache.
  const bytes = readBytes(path);
  if (bytes.length === 0) throw new FileFormatError(path, 'not an image (the file is empty)');
  let out: { data: Buffer; info: { width: number; height: number; channels: number } };
  let grey16 = false;
  let tooLarge: string | undefined;
  try {
    const opts = { ignoreIcc: true, failOn: 'error', limitInputPixels: MAX_IMAGE_PIXELS } as const;
    const meta = await sharp(bytes, { ...opts, limitInputPixels: false }).metadata(); // the header only: cheap at any size
    // A few hundred bytes of GIF or PNG can declare 200 megapixels: refuse before decoding (a decompression bomb).
    if ((meta.width ?? 0) * (meta.height ?? 0) > MAX_IMAGE_PIXELS) tooLarge = `${meta.width}x${meta.height}`;
    if (tooLarge) throw new Error('too large');
    // PIL opens 16-bit grey (no alpha) as mode I and convert('RGB') clips it to 255; every other 16-bit
    // layout it reduces to the high byte, which is what sharp's 8-bit output gives.
    grey16 = meta.depth === 'ushort' && meta.channels === 1;
    const pipeline = sharp(bytes, opts);
    // keep 16-bit grey as one 16-bit channel (sharp would otherwise convert it to 8-bit sRGB)
    if (grey16) pipeline.toColourspace('grey16');
    out = await pipeline.raw({ depth: grey16 ? 'ushort' : 'uchar' }).toBuffer({ resolveWithObject: true });
  } catch (e) {
    if (tooLarge) throw new FileFormatError(path, `image is ${tooLarge} pixels, more than the ${MAX_IMAGE_SIDE}x${MAX_IMAGE_SIDE} visprompt decodes (images are resized to the model's size anyway): downscale it first`);
    throw new FileFormatError(path, `not an image or damaged (sharp: ${firstLine(e)})`);
  }
  const { width, height, channels } = out.info;
  let src: Uint8Array = out.data;
  if (grey16) {
    const n = width * height * channels;
    const clipped = new Uint8Array(n);
    for (let i = 0; i < n; i++) { const v = out.data.readUInt16LE(i * 2); clipped[i] = v > 255 ? 255 : v; }
    src = clipped;
  }
  if (src.length < width * height * channels) {
    throw new FileFormatError(path, `decoder returned ${src.length} bytes for ${width}x${height}x${channels}`);
  }
  const n = width * height;
  const data = new Uint8Array(n * 3);
  switch (channels) {
    case 3:
      data.set(src.subarray(0, n * 3));
      break;
    case 4: // RGBA: drop alpha, keep the colour bytes as stored
      for (let i = 0; i < n; i++) { data[i * 3] = src[i * 4]!; data[i * 3 + 1] = src[i * 4 + 1]!; data[i * 3 + 2] = src[i * 4 + 2]!; }
      break;
    case 1: case 2: // grey or grey+alpha
      for (let i = 0; i < n; i++) { const v = src[i * channels]!; data[i * 3] = v; data[i * 3 + 1] = v; data[i * 3 + 2] = v; }
      break;
    default:
      throw new FileFormatError(path, `unsupported image: ${channels} channels (expected grey, grey+alpha, RGB or RGBA)`);
  }
  return { width, height, data };
}

// ---------------------------------------------------------------------------------------------------------------
// PNG chunks

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 (ISO 3309 / PNG), as in the PNG specification's sample code. */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function makeChunk(type: string, body: Buffer): Buffer {
  const head = Buffer.alloc(8);
  head.writeUInt32BE(body.length, 0);
  head.write(type, 4, 'latin1');
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([head.subarray(4), body])), 0);
  return Buffer.concat([head, body, crc]);
}

function isLatin1(s: string): boolean {
  for (let i = 0; i < s.length; i++) if (s.charCodeAt(i) > 0xff) return false;
  return true;
}

/**
 * A tEXt chunk when key and value are Latin-1 (what PIL's PngInfo.add_text writes and what SD tools read), else an
 * uncompressed iTXt chunk with UTF-8 text, as PIL falls back to.
 */
function textChunk(key: string, value: string): Buffer {
  // PNG keywords: 1-79 printable Latin-1 characters, no leading/trailing/double spaces.
  if (key.length < 1 || key.length > 79 || !/^[\x20-\x7e\xa1-\xff]+$/.test(key) || /^ | $| {2}/.test(key)) {
    throw new InputError(`PNG text keyword ${JSON.stringify(key)} is not 1-79 printable Latin-1 characters`);
  }
  if (isLatin1(value) && !value.includes('\0')) {
    return makeChunk('tEXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0]), Buffer.from(value, 'latin1')]));
  }
  // keyword \0 compression-flag(0) compression-method(0) language-tag \0 translated-keyword \0 text
  return makeChunk('iTXt', Buffer.concat([Buffer.from(key, 'latin1'), Buffer.from([0, 0, 0, 0, 0]), Buffer.from(value, 'utf8')]));
}

/** Insert text chunks right after IHDR (readers that stop early still see them). */
export function insertPNGText(png: Buffer, textChunks: Record<string, string>): Buffer {
  if (png.length < 33 || !png.subarray(0, 8).equals(PNG_SIGNATURE) || png.toString('latin1', 12, 16) !== 'IHDR') {
    throw new Error('insertPNGText: not a PNG starting with IHDR');
  }
  const ihdrEnd = 8 + 8 + png.readUInt32BE(8) + 4;
  const chunks = Object.entries(textChunks).map(([k, v]) => textChunk(k, v));
  return Buffer.concat([png.subarray(0, ihdrEnd), ...chunks, png.subarray(ihdrEnd)]);
}

/** Encode 8-bit RGB as PNG (zlib level 6, like PIL's default), with optional text chunks. */
export async function encodePNG(image: RGBImage, textChunks?: Record<string, string>): Promise<Buffer> {
  assertRGB(image);
  const png = await sharp(image.data, { raw: { width: image.width, height: image.height, channels: 3 } })
    .png({ compressionLevel: 6 })
    .toBuffer();
  return textChunks && Object.keys(textChunks).length > 0 ? insertPNGText(png, textChunks) : png;
}

/** Write an RGB image as PNG; `textChunks` become tEXt chunks (e.g. `{ parameters: '...' }`). */
export async function writePNG(path: string, image: RGBImage, textChunks?: Record<string, string>): Promise<void> {
  const png = await encodePNG(image, textChunks);
  try {
    fs.writeFileSync(path, png);
  } catch (e) {
    throw new InputError(`cannot write ${path}: ${(e as NodeJS.ErrnoException).code ?? firstLine(e)}`);
  }
}

/**
 * The text chunks of a PNG (tEXt, uncompressed or zlib iTXt, zTXt), keyword -> text, first occurrence wins.
 * Chunk CRCs are checked, so a damaged or wrongly written chunk is reported rather than read.
 */
export function parsePNGText(png: Buffer, file = '<buffer>'): Record<string, string> {
  if (png.length < 8 || !png.subarray(0, 8).equals(PNG_SIGNATURE)) throw new FileFormatError(file, 'not a PNG (bad signature)');
  const out: Record<string, string> = {};
  let p = 8;
  while (p < png.length) {
    if (p + 12 > png.length) throw new FileFormatError(file, `truncated PNG: chunk header at byte ${p} runs past the end`);
    const len = png.readUInt32BE(p);
    const type = png.toString('latin1', p + 4, p + 8);
    if (p + 12 + len > png.length) throw new FileFormatError(file, `truncated PNG: chunk ${type} at byte ${p} needs ${len} bytes`);
    const body = png.subarray(p + 8, p + 8 + len);
    if (type === 'tEXt' || type === 'zTXt' || type === 'iTXt') {
      const stored = png.readUInt32BE(p + 8 + len);
      if (crc32(png.subarray(p + 4, p + 8 + len)) !== stored) throw new FileFormatError(file, `chunk ${type} at byte ${p} has a bad CRC`);
      const z = body.indexOf(0);
      if (z < 1) throw new FileFormatError(file, `chunk ${type} at byte ${p} has no keyword`);
      const key = body.toString('latin1', 0, z);
      let value: string;
      if (type === 'tEXt') {
        value = body.toString('latin1', z + 1);
      } else if (type === 'zTXt') {
        value = inflate(body.subarray(z + 2), file, type).toString('latin1');
      } else {
        const compressed = body[z + 1] === 1;
        const lang = body.indexOf(0, z + 3);
        const trans = lang < 0 ? -1 : body.indexOf(0, lang + 1);
        if (trans < 0) throw new FileFormatError(file, `chunk iTXt at byte ${p} is malformed`);
        const raw = body.subarray(trans + 1);
        value = (compressed ? inflate(raw, file, type) : raw).toString('utf8');
      }
      if (!(key in out)) out[key] = value;
    }
    if (type === 'IEND') break;
    p += 12 + len;
  }
  return out;
}

function inflate(b: Buffer, file: string, type: string): Buffer {
  try {
    return inflateSync(b);
  } catch (e) {
    throw new FileFormatError(file, `chunk ${type}: bad compressed text (${firstLine(e)})`);
  }
}

/** Read the text chunks of a PNG file (see parsePNGText). */
export function readPNGText(path: string): Record<string, string> {
  const bytes = readBytes(path);
  return parsePNGText(bytes, path);
}
