import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError, InputError } from '../src/errors.js';
import { SafetensorsFile } from '../src/io/safetensors.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { pngImage } from './png-chunks.js';
import { crc32, encodePNG, parsePNGText, readImageRGB, readPNGText, writePNG, type RGBImage } from '../src/io/image.js';
import { LCG_H, LCG_W, lcgImageBytes } from './lcg-image.js';
import { pilResize, precomputeCoeffs, type PILResample } from '../src/io/pil-resize.js';
import { CLIPImageProcessor, centerCrop, parseCLIPImageProcessorConfig, shortestEdgeSize } from '../src/io/clip-image-processor.js';
import { VaeImageProcessor, checkDivisible, numpyToPil, roundHalfEven } from '../src/io/vae-image-processor.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures');
const MODELS = ['tiny-sd15', 'tiny-sd21'] as const;
const golden = (model: string, name: string) => path.join(FIXTURES, 'goldens', model, name);

function u8(f: SafetensorsFile, name: string): { shape: number[]; data: Uint8Array } {
  const t = f.readInts(name);
  return { shape: t.shape, data: Uint8Array.from(t.data) };
}

function countDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

/** A 1-row 16-bit greyscale PNG built by hand (sharp has no 16-bit raw input): big-endian samples. */
function grey16PNG(values: number[]): Buffer {
  const row = Buffer.alloc(values.length * 2);
  values.forEach((v, i) => row.writeUInt16BE(v, i * 2));
  return pngImage(values.length, 1, 16, 0, [row]);
}

function tmpDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-image-'));
}

for (const model of MODELS) {
  test(`${model}: decode, PIL bicubic resize, center crop and CLIP pixel_values match transformers`, async () => {
    const meta = JSON.parse(fs.readFileSync(golden(model, 'image_encoder.json'), 'utf8')) as {
      images: { index: number; png: string; width: number; height: number; resized_hw: [number, number] }[];
      processor_config: unknown;
    };
    const f = SafetensorsFile.open(golden(model, 'image_encoder.safetensors'));
    try {
      const proc = CLIPImageProcessor.fromFile(path.join(FIXTURES, 'models', model, 'feature_extractor'));
      assert.deepEqual(proc.config, parseCLIPImageProcessorConfig(meta.processor_config));
      const images: RGBImage[] = [];
      for (const im of meta.images) {
        const k = `image_${im.index}`;
        const img = await readImageRGB(golden(model, im.png));
        assert.equal(img.width, im.width);
        assert.equal(img.height, im.height);
        const src = u8(f, `${k}.source_uint8_hwc`);
        assert.deepEqual(src.shape, [im.height, im.width, 3]);
        assert.equal(countDiff(img.data, src.data), 0, `${k}: decoded bytes differ from PIL's`);
        images.push(img);

        const st = proc.stages(img);
        const resized = u8(f, `${k}.resized_uint8_hwc`);
        assert.deepEqual([st.resized.height, st.resized.width], im.resized_hw);
        assert.deepEqual(shortestEdgeSize(im.height, im.width, 224), im.resized_hw);
        assert.equal(countDiff(st.resized.data, resized.data), 0, `${k}: resized bytes differ from PIL bicubic`);
        const cropped = u8(f, `${k}.cropped_uint8_hwc`);
        assert.equal(countDiff(st.cropped.data, cropped.data), 0, `${k}: cropped bytes differ`);
      }
      const pv = proc.preprocess(images);
      const want = f.readFloat32('pixel_values');
      assert.deepEqual(pv.shape, want.shape);
      const err = maxAbsDiff(pv, want);
      console.log(`  ${model} pixel_values max abs diff ${err}`);
      assert.ok(err <= 1e-6, `pixel_values max abs diff ${err}`);
    } finally {
      f.close();
    }
  });

  test(`${model}: VaeImageProcessor.preprocess of vae_input.png equals diffusers' exactly`, async () => {
    const meta = JSON.parse(fs.readFileSync(golden(model, 'vae.json'), 'utf8')) as { tensors: Record<string, { shape: number[] }> };
    const want = SafetensorsFile.open(golden(model, 'vae.safetensors'));
    try {
      const img = await readImageRGB(golden(model, 'vae_input.png'));
      const [, , h, w] = meta.tensors.image!.shape;
      const x = new VaeImageProcessor({ vae_scale_factor: 4 }).preprocess(img, { height: h, width: w });
      const ref = want.readFloat32('image');
      assert.deepEqual(x.shape, ref.shape);
      assert.equal(maxAbsDiff(x, ref), 0);
    } finally {
      want.close();
    }
  });

  test(`${model}: postprocess agrees with the pipeline's image_np and rounds like numpy`, () => {
    const f = SafetensorsFile.open(golden(model, 'pipeline_t2i.safetensors'));
    try {
      const keys = [...f.tensors.keys()].filter((k) => k.endsWith('.image_np'));
      assert.ok(keys.length >= 1);
      const vp = new VaeImageProcessor();
      for (const key of keys) {
        const np = f.readFloat32(key); // [1, H, W, 3] in [0, 1]
        const [b, h, w] = np.shape as [number, number, number];
        // back to a decoder-style [B, 3, H, W] tensor in [-1, 1]; the round trip is within float32 rounding
        const n = h * w;
        const chw = new Float32Array(b * 3 * n);
        for (let i = 0; i < n; i++) for (let c = 0; c < 3; c++) chw[c * n + i] = np.data[i * 3 + c]! * 2 - 1;
        const back = vp.postprocessNp({ shape: [b, 3, h, w], data: chw });
        assert.deepEqual(back.shape, np.shape);
        assert.ok(maxAbsDiff(back, np) <= 6e-8, `${key}: postprocess round trip ${maxAbsDiff(back, np)}`);
        const [img] = numpyToPil(np);
        assert.equal(img!.width, w);
        for (let i = 0; i < np.data.length; i++) {
          const v = Math.fround(np.data[i]! * 255);
          assert.ok(Math.abs(img!.data[i]! - v) <= 0.5, `${key}[${i}]: ${v} -> ${img!.data[i]}`);
        }
        const [img2] = vp.postprocess({ shape: [b, 3, h, w], data: chw });
        assert.ok(countDiff(img!.data, img2!.data) <= np.data.length / 1000, 'postprocess and numpy_to_pil of image_np disagree');
      }
    } finally {
      f.close();
    }
  });
}

test('numpy_to_pil rounds half to even in float32', () => {
  assert.equal(roundHalfEven(0.5), 0);
  assert.equal(roundHalfEven(1.5), 2);
  assert.equal(roundHalfEven(2.5), 2);
  assert.equal(roundHalfEven(127.5), 128);
  assert.equal(roundHalfEven(126.5), 126);
  assert.equal(roundHalfEven(2.4999998), 2);
  // values whose float32 product with 255 is exactly k + 0.5
  let halves = 0;
  const xs: number[] = [];
  const expect: number[] = [];
  for (let k = 0; k < 255; k++) {
    const x = Math.fround((k + 0.5) / 255);
    const p = Math.fround(x * 255);
    if (p === k + 0.5) { halves++; xs.push(x); expect.push(k % 2 === 0 ? k : k + 1); }
  }
  assert.ok(halves > 10);
  const data = new Float32Array(xs.length * 3);
  xs.forEach((x, i) => data.fill(x, i * 3, i * 3 + 3));
  const [img] = numpyToPil({ shape: [1, 1, xs.length, 3], data });
  expect.forEach((e, i) => assert.equal(img!.data[i * 3], e, `x=${xs[i]}`));
  // denormalize clamps; NaN becomes 0
  const [c] = new VaeImageProcessor().postprocess({ shape: [1, 3, 1, 1], data: Float32Array.from([-3, 3, NaN]) });
  assert.deepEqual([...c!.data], [0, 255, 0]);
});

test('checkDivisible names the side and the factor', () => {
  checkDivisible(64, 512, 8);
  assert.throws(() => checkDivisible(65, 64, 8), (e: unknown) => e instanceof InputError && /^width 65 is not divisible by 8 \(the VAE factor\)/.test(e.message) && /64 or 72/.test(e.message));
  assert.throws(() => checkDivisible(64, 4, 8), (e: unknown) => e instanceof InputError && /^height 4 is not divisible by 8/.test(e.message));
  assert.throws(() => checkDivisible(0, 64, 8), InputError);
  const vp = new VaeImageProcessor({ vae_scale_factor: 8 });
  assert.deepEqual(vp.defaultHeightWidth({ width: 70, height: 65, data: new Uint8Array(70 * 65 * 3) }), { height: 64, width: 64 });
});

test('PIL resize: identity, nearest, box averages, antialiased support', () => {
  const im: RGBImage = { width: 4, height: 2, data: Uint8Array.from({ length: 24 }, (_, i) => (i * 37) % 256) };
  const same = pilResize(im, 4, 2, 'bicubic');
  assert.deepEqual([...same.data], [...im.data]);
  assert.notEqual(same.data, im.data);
  // nearest 2x up repeats every pixel
  const up = pilResize(im, 8, 4, 'nearest');
  for (let y = 0; y < 4; y++) for (let x = 0; x < 8; x++) for (let c = 0; c < 3; c++) {
    assert.equal(up.data[(y * 8 + x) * 3 + c], im.data[((y >> 1) * 4 + (x >> 1)) * 3 + c]);
  }
  // box 2x down of (0, 255) pairs: (255 * 2^21 + 2^21) >> 22 = 128
  const pairs: RGBImage = { width: 2, height: 1, data: Uint8Array.from([0, 0, 0, 255, 255, 255]) };
  assert.deepEqual([...pilResize(pairs, 1, 1, 'box').data], [128, 128, 128]);
  // a constant image stays constant under every filter and size
  const flat: RGBImage = { width: 7, height: 5, data: new Uint8Array(7 * 5 * 3).fill(200) };
  for (const f of ['nearest', 'box', 'bilinear', 'hamming', 'bicubic', 'lanczos'] as const) {
    for (const [w, h] of [[3, 2], [13, 11], [7, 9], [2, 5]] as const) {
      const r = pilResize(flat, w, h, f);
      assert.equal(r.data.length, w * h * 3);
      assert.ok(r.data.every((v) => v === 200), `${f} ${w}x${h}`);
    }
  }
  // downscaling by 4 widens bicubic support to 8 source pixels each side (ksize = 2*8+1)
  const c = precomputeCoeffs(100, 0, 100, 25, { support: 2, fn: () => 1 });
  assert.equal(c.ksize, 17);
  // upscaling keeps support 2: 5 coefficient slots, fixed-point weights summing to ~2^22
  const u = precomputeCoeffs(40, 0, 40, 224, { support: 2, fn: (x) => Math.max(0, 1 - Math.abs(x) / 2) });
  assert.equal(u.ksize, 5);
  let s = 0;
  for (let i = 0; i < u.bounds[1]!; i++) s += u.kk[i]!;
  assert.ok(Math.abs(s - (1 << 22)) <= 5);
});

test('PIL resize of every filter, down/up/one-axis/box, matches Pillow 9.4 (CRC32 of the output bytes)', () => {
  // 23x17 RGB from an LCG; the CRCs come from Pillow 9.4.0's Image.frombytes(...).resize((w, h), resample, box).tobytes()
  const w = LCG_W, h = LCG_H;
  const data = lcgImageBytes();
  assert.equal(crc32(data), 1526629162);
  const box = [2.5, 1.25, 20.0, 16.5] as const;
  const cases: [PILResample, number, number, typeof box | undefined, number][] = [
    ['nearest', 7, 5, undefined, 0x1fde41c9], ['nearest', 10, 13, undefined, 0x275f78a5], ['nearest', 61, 40, undefined, 0xcfd81f05],
    ['nearest', 23, 9, undefined, 0x45ce95cb], ['nearest', 12, 12, box, 0x1e9692a9],
    ['lanczos', 7, 5, undefined, 0x5ecfcb4e], ['lanczos', 10, 13, undefined, 0x57789f89], ['lanczos', 61, 40, undefined, 0x47001c3f],
    ['lanczos', 23, 9, undefined, 0x50676d88], ['lanczos', 12, 12, box, 0xc2756938],
    ['bilinear', 7, 5, undefined, 0x2331e115], ['bilinear', 10, 13, undefined, 0x35d5de2c], ['bilinear', 61, 40, undefined, 0x354c0f51],
    ['bilinear', 23, 9, undefined, 0x08681b1a], ['bilinear', 12, 12, box, 0xf2229def],
    ['bicubic', 7, 5, undefined, 0x6145fffe], ['bicubic', 10, 13, undefined, 0x752e5601], ['bicubic', 61, 40, undefined, 0x9524e95e],
    ['bicubic', 23, 9, undefined, 0x67f7aed2], ['bicubic', 12, 12, box, 0x7d487170],
    ['box', 7, 5, undefined, 0xf1d7f090], ['box', 10, 13, undefined, 0x2d73b4b7], ['box', 61, 40, undefined, 0xcfd81f05],
    ['box', 23, 9, undefined, 0x63c9a934], ['box', 12, 12, box, 0xd231bab4],
    ['hamming', 7, 5, undefined, 0x2d7714d4], ['hamming', 10, 13, undefined, 0xe8666ecd], ['hamming', 61, 40, undefined, 0x0a75fd8b],
    ['hamming', 23, 9, undefined, 0xa98a146a], ['hamming', 12, 12, box, 0x7bbbfdb4],
  ];
  for (const [f, ow, oh, b, want] of cases) {
    const r = pilResize({ width: w, height: h, data }, ow, oh, f, b);
    assert.equal(crc32(r.data), want, `${f} ${ow}x${oh}${b ? ` box ${b}` : ''}`);
  }
});

test('center crop pads like transformers when the image is smaller than the crop', () => {
  const im: RGBImage = { width: 3, height: 5, data: Uint8Array.from({ length: 45 }, (_, i) => i + 1) };
  const c = centerCrop(im, 3, 6); // height 5 -> 3 (top = 1), width 3 -> 6 (pad left ceil(3/2) = 2)
  assert.equal(c.width, 6);
  assert.equal(c.height, 3);
  for (let y = 0; y < 3; y++) for (let x = 0; x < 6; x++) {
    const sx = x - 2, sy = y + 1;
    const inside = sx >= 0 && sx < 3;
    assert.equal(c.data[(y * 6 + x) * 3], inside ? im.data[(sy * 3 + sx) * 3] : 0, `(${x},${y})`);
  }
});

test('PNG text chunks: written after IHDR with valid CRCs, read back, pixels lossless', async () => {
  assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
  const dir = tmpDir();
  try {
    const img: RGBImage = { width: 5, height: 3, data: Uint8Array.from({ length: 45 }, (_, i) => (i * 53) % 256) };
    const text = { parameters: 'a cat, best quality\nNegative prompt: blurry\nSteps: 4, Sampler: DDIM, CFG scale: 7.5, Seed: 82', Software: 'visprompt', Comment: 'ünïcödé ✓ prompt' };
    const file = path.join(dir, 'out.png');
    await writePNG(file, img, text);
    assert.deepEqual(readPNGText(file), text);
    const back = await readImageRGB(file);
    assert.deepEqual([back.width, back.height], [5, 3]);
    assert.equal(countDiff(back.data, img.data), 0);
    const bytes = fs.readFileSync(file);
    assert.equal(bytes.toString('latin1', 12, 16), 'IHDR');
    assert.equal(bytes.toString('latin1', 8 + 25 + 4, 8 + 25 + 8), 'tEXt');
    // a flipped byte in the text is caught by the CRC
    const bad = Buffer.from(bytes);
    bad[8 + 25 + 8 + 2]! ^= 1;
    assert.throws(() => parsePNGText(bad, 'bad.png'), (e: unknown) => e instanceof FileFormatError && /bad CRC/.test(e.message));
    assert.deepEqual(parsePNGText(await encodePNG(img)), {});
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('grey and RGBA PNGs become RGB like PIL convert("RGB")', async () => {
  const dir = tmpDir();
  try {
    const { default: sharp } = await import('sharp');
    const rgba = Uint8Array.from([10, 20, 30, 0, 40, 50, 60, 128, 70, 80, 90, 255]);
    await sharp(rgba, { raw: { width: 3, height: 1, channels: 4 } }).png().toFile(path.join(dir, 'rgba.png'));
    const a = await readImageRGB(path.join(dir, 'rgba.png'));
    assert.deepEqual([...a.data], [10, 20, 30, 40, 50, 60, 70, 80, 90]); // alpha dropped, colours untouched
    const grey = Uint8Array.from([0, 99, 255]);
    await sharp(grey, { raw: { width: 3, height: 1, channels: 1 } }).png().toFile(path.join(dir, 'grey.png'));
    const g = await readImageRGB(path.join(dir, 'grey.png'));
    assert.deepEqual([...g.data], [0, 0, 0, 99, 99, 99, 255, 255, 255]);
    // 16-bit grey: PIL opens it as mode I and convert('RGB') clips at 255 (other 16-bit layouts keep the high byte)
    fs.writeFileSync(path.join(dir, 'grey16.png'), grey16PNG([0, 200, 300, 65535]));
    const h = await readImageRGB(path.join(dir, 'grey16.png'));
    assert.deepEqual([...h.data], [0, 0, 0, 200, 200, 200, 255, 255, 255, 255, 255, 255]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('bad image files are FileFormatErrors naming the file', async () => {
  const dir = tmpDir();
  try {
    const notImage = path.join(dir, 'notes.png');
    fs.writeFileSync(notImage, 'this is a text file, not a picture\n');
    const missing = path.join(dir, 'missing.png');
    const truncated = path.join(dir, 'truncated.png');
    const full = fs.readFileSync(golden('tiny-sd15', 'vae_input.png'));
    fs.writeFileSync(truncated, full.subarray(0, Math.floor(full.length / 2)));
    const empty = path.join(dir, 'empty.png');
    fs.writeFileSync(empty, '');
    for (const [file, why] of [[notImage, /not an image/], [missing, /no such file/], [truncated, /not an image or damaged/], [empty, /empty/]] as const) {
      await assert.rejects(readImageRGB(file), (e: unknown) => {
        assert.ok(e instanceof FileFormatError, `${file}: ${String(e)}`);
        assert.ok(e.message.startsWith(file), e.message);
        assert.match(e.message, why);
        assert.ok(!e.message.includes('\n'), 'one-line message');
        return true;
      });
    }
    assert.throws(() => readPNGText(notImage), (e: unknown) => e instanceof FileFormatError && e.message.includes(notImage));
    assert.throws(() => readPNGText(truncated), (e: unknown) => e instanceof FileFormatError && /truncated/.test(e.message));
    assert.throws(() => CLIPImageProcessor.fromFile(notImage), (e: unknown) => e instanceof FileFormatError && /JSON/.test(e.message));
    assert.throws(() => parseCLIPImageProcessorConfig({ resample: 9 }, 'cfg.json'), (e: unknown) => e instanceof FileFormatError && /\[resample\]/.test(e.message));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('CLIP config: ints expand like get_size_dict; non-square outputs are stacked only when equal', () => {
  const cfg = parseCLIPImageProcessorConfig({ size: 32, crop_size: 16, resample: 2 });
  assert.deepEqual(cfg.size, { shortest_edge: 32 });
  assert.deepEqual(cfg.crop_size, { height: 16, width: 16 });
  assert.equal(cfg.resample, 'bilinear');
  const p = new CLIPImageProcessor({ ...cfg, do_center_crop: false });
  const a: RGBImage = { width: 10, height: 20, data: new Uint8Array(600) };
  const b: RGBImage = { width: 20, height: 10, data: new Uint8Array(600) };
  const t: Tensor = p.preprocess([a, a]);
  assert.deepEqual(t.shape, [2, 3, 64, 32]);
  assert.throws(() => p.preprocess([a, b]), InputError);
});

test('a decompression bomb (a 500-byte GIF declaring 16305x12661) is refused from its header, not decoded', async () => {
  // Found by the fuzzer: decoding it allocated 620 MB and took seconds.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-bomb-'));
  const file = path.join(dir, 'bomb.gif');
  fs.writeFileSync(file, Buffer.from('R0lGODlhCAAIAIYAAExpVHHed1sHpGoEUmNMPlsN6m913GtbkGLVzlnYwkADFVu1N1s5B1UHA1TGemyMsEslBlF5dH4RKkyjEFZfhH8RTFBKITYkEjI4f3t7anwXNUkbcUUIfDw3ADICAAAAAAAAAMreNx9Xb194fiPiOGeq4Ya+QpnROg+rNxaTN635NhxXNDL+NgjrNwX8Nf31ORJSRsw3VoVFR9TvObjDP4CBPAmEQvbAPextQVJybhxXbGFzfEN3ggbUPXSZQPRWQn9wc+KAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAD5NhxXNDL+NgjrNwX8Nf31ORJSRsw3VoVFR9TvOSTDP4CBPAmEQvbAPextQVJyAAAAAAAAAAAAAAAAGyspJywwPzoxgQA7AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAh+QQFAAAAACwAAAAACAAIAAAHQoAgHB8PCQgGBRYVGBQOAQcCHSE5IhELBAMXN0A4GRMMCigtNj0uHhANJSYyNTwvGhIqIyQ0PjszGyspJywwPzoxgQA7', 'base64'));
  const t0 = Date.now();
  await assert.rejects(readImageRGB(file), (e: Error) => e instanceof FileFormatError && /16305x12661 pixels, more than the 8192x8192/.test(e.message));
  // The clock is not read under mutation testing (Stryker's hook defines __stryker__; instrumented code is slow).
  if ((globalThis as Record<string, unknown>).__stryker__ === undefined) assert.ok(Date.now() - t0 < 1000, 'refused without decoding');
  fs.rmSync(dir, { recursive: true, force: true });
});
