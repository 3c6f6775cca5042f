/**
 * Image edges the other image tests leave open (milliseconds): decoding of 16-bit RGB / RGBA / grey+alpha, 8-bit
 * grey+alpha and a 2-row 16-bit grey PNG (expected bytes from Pillow 9.4's `Image.open(p).convert('RGB')`), the
 * empty file, the size limit at exactly 8192 x 8192 (PNGs that declare the size and carry one row: never decoded in
 * full), an iTXt keyword in Latin-1; Pillow's resize default (bicubic), a box filter tap exactly at -0.5 and integral
 * boxes that are not crops (bytes from Pillow 9.4); transformers' CLIPImageProcessor defaults.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { insertPNGText, parsePNGText, readImageRGB } from '../src/io/image.js';
import { pilResize, type PixelImage } from '../src/io/pil-resize.js';
import { CLIP_IMAGE_PROCESSOR_DEFAULTS, OPENAI_CLIP_MEAN, OPENAI_CLIP_STD } from '../src/io/clip-image-processor.js';
import { VaeImageProcessor, numpyToPil } from '../src/io/vae-image-processor.js';
import { pngImage } from './png-chunks.js';

const png = pngImage;
const be16 = (values: number[]): Buffer => {
  const b = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => b.writeUInt16BE(v, i * 2));
  return b;
};
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-image-edges-'));
function file(name: string, bytes: Buffer | string): string {
  const p = path.join(dir, name);
  fs.writeFileSync(p, bytes);
  return p;
}

test('16-bit and grey+alpha PNGs decode to the bytes Pillow 9.4 convert("RGB") gives', async () => {
  const rgb = async (name: string, bytes: Buffer): Promise<number[]> => [...(await readImageRGB(file(name, bytes))).data];
  // 16-bit RGB (Pillow mode RGB): the high byte of each sample, not rounded (0x80ff -> 128, 0x7f80 -> 127).
  assert.deepEqual(await rgb('rgb16.png', png(2, 1, 16, 2, [be16([0x80ff, 0x1234, 0xffff, 0x00ff, 0x0100, 0x7f80])])), [128, 18, 255, 0, 1, 127]);
  // 16-bit RGBA: alpha dropped, colours by their high byte.
  assert.deepEqual(await rgb('rgba16.png', png(1, 1, 16, 6, [be16([0x80ff, 0x1234, 0x00ff, 0x8000])])), [128, 18, 0]);
  // 16-bit grey+alpha (Pillow opens it as RGBA): the grey's high byte, replicated.
  assert.deepEqual(await rgb('la16.png', png(2, 1, 16, 4, [be16([0x80ff, 0, 0x0100, 0xffff])])), [128, 128, 128, 1, 1, 1]);
  // 8-bit grey (Pillow mode L): replicated, not taken for 16-bit grey.
  assert.deepEqual(await rgb('grey8.png', png(2, 1, 8, 0, [Buffer.from([10, 200])])), [10, 10, 10, 200, 200, 200]);
  // 8-bit grey+alpha: grey replicated, alpha dropped.
  assert.deepEqual(await rgb('la8.png', png(2, 1, 8, 4, [Buffer.from([10, 0, 200, 128])])), [10, 10, 10, 200, 200, 200]);
  // 16-bit grey in two rows (Pillow mode I, clipped at 255), every pixel of both rows.
  const g = await readImageRGB(file('grey16x2.png', png(2, 2, 16, 0, [be16([0, 200]), be16([300, 65535])])));
  assert.deepEqual([g.width, g.height], [2, 2]);
  assert.deepEqual([...g.data], [0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255]);
});

test('empty file, and the size limit: 8192 x 8192 is decoded (here: fails as damaged), one pixel more is refused', async () => {
  const refused = async (p: string, check: (message: string) => boolean): Promise<void> => {
    await assert.rejects(readImageRGB(p), (e: unknown) => {
      assert.ok(e instanceof FileFormatError, String(e));
      assert.ok(check(e.message), e.message);
      return true;
    });
  };
  const empty = file('empty.png', '');
  await refused(empty, (m) => m === `${empty}: not an image (the file is empty)`);
  // 1-bit grey PNGs that declare the size and carry one row of data.
  const atLimit = file('8192.png', png(8192, 8192, 1, 0, [Buffer.alloc(1024)]));
  await refused(atLimit, (m) => m.startsWith(`${atLimit}: not an image or damaged (sharp: `) && !m.includes('more than'));
  for (const [w, h] of [[8193, 8192], [8192, 8193], [20000, 20000]] as const) {
    const p = file(`${w}x${h}.png`, png(w, h, 1, 0, [Buffer.alloc(Math.ceil(w / 8))]));
    await refused(p, (m) => m === `${p}: image is ${w}x${h} pixels, more than the 8192x8192 visprompt decodes (images are resized to the model's size anyway): downscale it first`);
  }
});

test('iTXt keeps a Latin-1 keyword as Latin-1 bytes', () => {
  const out = insertPNGText(png(1, 1, 8, 0), { 'caf\u00e9': 'check \u2713' });
  const at = out.indexOf('iTXt', 0, 'latin1');
  assert.ok(at > 0);
  assert.deepEqual([...out.subarray(at + 4, at + 4 + 10)], [0x63, 0x61, 0x66, 0xe9, 0, 0, 0, 0, 0, 0x63]);
  assert.deepEqual(parsePNGText(out), { 'caf\u00e9': 'check \u2713' });
});

test('Pillow 9.4 resize: bicubic by default, a box filter tap at exactly -0.5 weighs nothing, integral boxes that are not crops', () => {
  const L = (width: number, height: number, values: number[]): PixelImage => ({ width, height, data: Uint8Array.from(values) });
  const bytes = (im: PixelImage): number[] => [...im.data];
  // Image.new('L', (5, 3)) with pixel i = (37 i + 11) % 256; im.resize((3, 2)) and with BICUBIC: [95, 73, 117, 173, 159, 92].
  const c = L(5, 3, Array.from({ length: 15 }, (_, i) => (37 * i + 11) % 256));
  assert.deepEqual(bytes(pilResize(c, 3, 2)), [95, 73, 117, 173, 159, 92]);
  assert.deepEqual(bytes(pilResize(c, 3, 2, 'bilinear')), [96, 80, 116, 168, 151, 96]);
  // BOX, 6 -> 3 over box (0.5, 0, 6, 1): output 0's taps lie at -0.5 and 0.5 of the filter: only +0.5 counts.
  const row = [10, 200, 30, 250, 0, 120, 60, 90];
  assert.deepEqual(bytes(pilResize(L(6, 1, row.slice(0, 6)), 3, 1, 'box', [0.5, 0, 6, 1])), [200, 140, 60]);
  assert.deepEqual(bytes(pilResize(L(8, 1, row), 3, 1, 'box', [0.5, 0, 6, 1])), [200, 140, 60]);
  // Integral boxes whose width (height) is not the output's: resampled, not cropped.
  const b = L(4, 2, row);
  assert.deepEqual(bytes(pilResize(b, 4, 2, 'bilinear', [1, 0, 3, 2])), [153, 158, 73, 85, 90, 105, 75, 68]);
  assert.deepEqual(bytes(pilResize(b, 4, 3, 'bilinear', [0, 1, 4, 2])), [3, 147, 50, 143, 0, 120, 60, 90, 0, 120, 60, 90]);
});

test("transformers' CLIPImageProcessor defaults, written out", () => {
  assert.deepEqual(OPENAI_CLIP_MEAN, [0.48145466, 0.4578275, 0.40821073]);
  assert.deepEqual(OPENAI_CLIP_STD, [0.26862954, 0.26130258, 0.27577711]);
  assert.deepEqual(CLIP_IMAGE_PROCESSOR_DEFAULTS, {
    do_resize: true,
    size: { shortest_edge: 224 },
    resample: 'bicubic',
    do_center_crop: true,
    crop_size: { height: 224, width: 224 },
    do_rescale: true,
    rescale_factor: 1 / 255,
    do_normalize: true,
    image_mean: [0.48145466, 0.4578275, 0.40821073],
    image_std: [0.26862954, 0.26130258, 0.27577711],
    do_convert_rgb: true,
  });
});

test('VAE postprocess and numpy_to_pil on a batch of two: layout, clamping, rounding, do_normalize off, shape checks', () => {
  // [2, 3, 1, 2] -> [2, 1, 2, 3]: out[b, 0, i, ch] = in[b, ch, 0, i] / 2 + 0.5, clamped to [0, 1], NaN kept.
  const x = Float32Array.from([-3, 3, 0, -0.5, NaN, 0.5, /* image 1 */ 1, -1, 0.25, 2, -2, 0]);
  const np = new VaeImageProcessor().postprocessNp({ shape: [2, 3, 1, 2], data: x });
  assert.deepEqual(np.shape, [2, 1, 2, 3]);
  assert.deepEqual([...np.data], [0, 0.5, NaN, 1, 0.25, 0.75, /* image 1 */ 1, 0.625, 0, 0, 1, 0.5]);
  const raw = new VaeImageProcessor({ do_normalize: false }).postprocessNp({ shape: [2, 3, 1, 2], data: x });
  assert.deepEqual([...raw.data], [-3, 0, NaN, 3, -0.5, 0.5, /* image 1 */ 1, 0.25, -2, -1, 2, 0]);
  // (x * 255).round() in float32, half to even; out of [0, 1] clipped (numpy would wrap), NaN -> 0.
  const imgs = numpyToPil({ shape: [2, 1, 2, 3], data: Float32Array.from([0, 0.5, 1, -0.1, 1.2, NaN, 0.2, 0.4, 0.6, 0.8, 1 / 255, 0.9]) });
  assert.equal(imgs.length, 2);
  assert.deepEqual(imgs.map((im) => [im.width, im.height, ...im.data]), [[2, 1, 0, 128, 255, 0, 255, 0], [2, 1, 51, 102, 153, 204, 1, 230]]);
  assert.throws(() => numpyToPil({ shape: [1, 1, 1, 3, 1], data: new Float32Array(3) }), { message: 'numpyToPil: expected [B, H, W, 3], got [1, 1, 1, 3, 1]' });
  assert.throws(() => new VaeImageProcessor().postprocess({ shape: [1, 3, 1, 1, 1], data: new Float32Array(3) }), { message: 'VaeImageProcessor.postprocess: expected [B, 3, H, W], got [1, 3, 1, 1, 1]' });
});

after(() => fs.rmSync(dir, { recursive: true, force: true }));
