/**
 * The image processors' configuration and argument handling, against diffusers' VaeImageProcessor and transformers'
 * CLIPImageProcessor semantics (get_size_dict forms of size / crop_size, PIL resampling codes, do_* switches, CHW
 * batches) and our one-line errors word for word. Tiny images, milliseconds (mutation slice io-images).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError, InputError } from '../src/errors.js';
import type { RGBImage } from '../src/io/image.js';
import { CLIPImageProcessor, CLIP_IMAGE_PROCESSOR_DEFAULTS, parseCLIPImageProcessorConfig, shortestEdgeSize } from '../src/io/clip-image-processor.js';
import { VaeImageProcessor, checkDivisible, numpyToPil } from '../src/io/vae-image-processor.js';

const rgb = (width: number, height: number, f: (i: number) => number = (i) => i % 256): RGBImage => ({ width, height, data: Uint8Array.from({ length: width * height * 3 }, (_, i) => f(i)) });
const inputError = (fn: () => unknown, message: string): void => assert.throws(fn, (e: unknown) => e instanceof InputError && e.message === message, message);
const configError = (raw: unknown, key: string | undefined, detail: string, file = 'cfg.json'): void => assert.throws(() => parseCLIPImageProcessorConfig(raw, file),
  (e: unknown) => e instanceof FileFormatError && e.key === key && e.message === `${file}${key !== undefined ? ` [${key}]` : ''}: ${detail}`, detail);

test('checkDivisible and numpyToPil arguments', () => {
  inputError(() => checkDivisible(1, 8, 8), 'width 1 is not divisible by 8 (the VAE factor); use 8');
  inputError(() => checkDivisible(8, 9, 8, 'the UNet\'s 2^3'), 'height 9 is not divisible by 8 (the UNet\'s 2^3); use 8 or 16');
  inputError(() => checkDivisible(1.5, 8, 8), 'width 1.5 is not a positive integer');
  inputError(() => checkDivisible(8, -8, 8), 'height -8 is not a positive integer');
  checkDivisible(1, 1, 1);
  assert.throws(() => numpyToPil({ shape: [1, 2, 2, 4], data: new Float32Array(16) }), { message: 'numpyToPil: expected [B, H, W, 3], got [1, 2, 2, 4]' });
  assert.throws(() => numpyToPil({ shape: [2, 2, 3], data: new Float32Array(12) }), { message: 'numpyToPil: expected [B, H, W, 3], got [2, 2, 3]' });
  assert.throws(() => new VaeImageProcessor().postprocess({ shape: [1, 4, 1, 1], data: new Float32Array(4) }), { message: 'VaeImageProcessor.postprocess: expected [B, 3, H, W], got [1, 4, 1, 1]' });
});

test('VaeImageProcessor.preprocess: CHW batches in [-1, 1], sizes floored to the factor, refusals', () => {
  for (const f of [0, 2.5]) assert.throws(() => new VaeImageProcessor({ vae_scale_factor: f }), { message: `VaeImageProcessor: vae_scale_factor ${f} must be a positive integer` });
  const one = new VaeImageProcessor({ vae_scale_factor: 1 });
  // two 1x1 images: batch-major, then channel-major; x / 255 in float32, then 2x - 1
  const t = one.preprocess([{ width: 1, height: 1, data: Uint8Array.from([0, 255, 51]) }, { width: 1, height: 1, data: Uint8Array.from([255, 0, 102]) }]);
  assert.deepEqual(t.shape, [2, 3, 1, 1]);
  assert.deepEqual([...t.data], [-1, 1, Math.fround(2 * Math.fround(0.2) - 1), 1, -1, Math.fround(2 * Math.fround(0.4) - 1)]);
  const raw = new VaeImageProcessor({ vae_scale_factor: 1, do_normalize: false }).preprocess({ width: 1, height: 1, data: Uint8Array.from([0, 255, 51]) });
  assert.deepEqual([...raw.data], [0, 1, Math.fround(0.2)]);
  const vp = new VaeImageProcessor();
  assert.deepEqual(vp.preprocess(rgb(12, 10)).shape, [1, 3, 8, 8]);
  assert.deepEqual(vp.preprocess(rgb(12, 10), { height: 16, width: 24 }).shape, [1, 3, 16, 24]);
  assert.deepEqual(vp.preprocess([rgb(12, 10), rgb(30, 30)]).shape, [2, 3, 8, 8], 'every image resized to the first one\'s size');
  inputError(() => vp.preprocess([]), 'VaeImageProcessor: no images given');
  inputError(() => vp.preprocess(rgb(5, 5)), 'image size 0x0 is smaller than the VAE factor 8');
  inputError(() => vp.preprocess(rgb(9, 5)), 'image size 8x0 is smaller than the VAE factor 8');
  inputError(() => vp.preprocess(rgb(5, 9)), 'image size 0x8 is smaller than the VAE factor 8');
  assert.throws(() => vp.preprocess([rgb(8, 8), { width: 2, height: 2, data: new Uint8Array(11) }]), { message: 'image 1: 2x2 RGB needs 12 bytes, got 11' });
  const keep = new VaeImageProcessor({ do_resize: false });
  assert.deepEqual(keep.preprocess(rgb(3, 2)).shape, [1, 3, 2, 3], 'no resize: the size is kept as it is');
  inputError(() => keep.preprocess([rgb(2, 2), rgb(4, 2)]), 'image 1 is 4x2 but image 0 is 2x2');
  inputError(() => keep.preprocess([rgb(2, 2), rgb(2, 3)]), 'image 1 is 2x3 but image 0 is 2x2');
});

test('CLIP preprocessor_config.json: every size / crop_size form, resampling codes, switches, mean / std, refusals', () => {
  const D = CLIP_IMAGE_PROCESSOR_DEFAULTS;
  assert.deepEqual(parseCLIPImageProcessorConfig({}), D);
  assert.deepEqual(parseCLIPImageProcessorConfig({ size: null, crop_size: null, resample: null, rescale_factor: null, do_resize: null, image_mean: null }), D);
  assert.deepEqual(parseCLIPImageProcessorConfig({ size: { shortest_edge: 10 } }).size, { shortest_edge: 10 });
  assert.deepEqual(parseCLIPImageProcessorConfig({ size: { height: 5, width: 7 } }).size, { height: 5, width: 7 });
  assert.deepEqual(parseCLIPImageProcessorConfig({ crop_size: { height: 3, width: 4 } }).crop_size, { height: 3, width: 4 });
  const names = [0, 1, 2, 3, 4, 5].map((r) => parseCLIPImageProcessorConfig({ resample: r }).resample);
  assert.deepEqual(names, ['nearest', 'lanczos', 'bilinear', 'bicubic', 'box', 'hamming']);
  const c = parseCLIPImageProcessorConfig({ rescale_factor: 0.5, do_resize: false, do_center_crop: false, do_rescale: false, do_normalize: false, do_convert_rgb: false, image_mean: 0.5, image_std: [2] });
  assert.deepEqual([c.rescale_factor, c.do_resize, c.do_center_crop, c.do_rescale, c.do_normalize, c.do_convert_rgb, c.image_mean, c.image_std], [0.5, false, false, false, false, false, [0.5, 0.5, 0.5], [2, 2, 2]]);
  assert.deepEqual(parseCLIPImageProcessorConfig({ image_mean: [0, 0, 0], image_std: [1, 2, 3] }).image_std, [1, 2, 3]);

  for (const raw of [[], null, 'x', 3]) configError(raw, undefined, 'expected a JSON object');
  assert.throws(() => parseCLIPImageProcessorConfig([]), { message: 'preprocessor_config.json: expected a JSON object' });
  configError({ size: 0 }, 'size', 'expected a positive integer, got 0');
  configError({ size: { shortest_edge: 1.5 } }, 'size.shortest_edge', 'expected a positive integer, got 1.5');
  configError({ size: { height: 0, width: 2 } }, 'size.height', 'expected a positive integer, got 0');
  configError({ size: { height: 2, width: '3' } }, 'size.width', 'expected a positive integer, got "3"');
  configError({ size: { height: 2 } }, 'size', 'expected an integer, {"shortest_edge": n} or {"height": h, "width": w}, got {"height":2}');
  configError({ size: { width: 2 } }, 'size', 'expected an integer, {"shortest_edge": n} or {"height": h, "width": w}, got {"width":2}');
  configError({ size: '224' }, 'size', 'expected an integer, {"shortest_edge": n} or {"height": h, "width": w}, got "224"');
  configError({ crop_size: -1 }, 'crop_size', 'expected a positive integer, got -1');
  configError({ crop_size: { height: 3, width: 0 } }, 'crop_size.width', 'expected a positive integer, got 0');
  configError({ crop_size: { height: 1.5, width: 3 } }, 'crop_size.height', 'expected a positive integer, got 1.5');
  configError({ crop_size: { width: 3 } }, 'crop_size', 'expected an integer or {"height": h, "width": w}, got {"width":3}');
  configError({ crop_size: { height: 3 } }, 'crop_size', 'expected an integer or {"height": h, "width": w}, got {"height":3}');
  configError({ crop_size: 'x' }, 'crop_size', 'expected an integer or {"height": h, "width": w}, got "x"');
  configError({ resample: 6 }, 'resample', 'expected a PIL resampling code 0-5 (3 = bicubic), got 6');
  configError({ resample: '3' }, 'resample', 'expected a PIL resampling code 0-5 (3 = bicubic), got "3"');
  configError({ rescale_factor: '0.5' }, 'rescale_factor', 'expected a number, got "0.5"');
  configError({ rescale_factor: Infinity }, 'rescale_factor', 'expected a number, got null');
  for (const key of ['do_resize', 'do_center_crop', 'do_rescale', 'do_normalize', 'do_convert_rgb']) configError({ [key]: 1 }, key, 'expected true or false, got 1');
  configError({ image_mean: [1, 2] }, 'image_mean', 'expected 3 numbers (one per RGB channel), got [1,2]');
  configError({ image_mean: ['a', 1, 2] }, 'image_mean', 'expected 3 numbers (one per RGB channel), got ["a",1,2]');
  configError({ image_std: '1' }, 'image_std', 'expected 3 numbers (one per RGB channel), got "1"');
  configError({ image_std: [1, 0, 1] }, 'image_std', 'a standard deviation of 0 would divide by zero');
  configError({ image_std: 0 }, 'image_std', 'a standard deviation of 0 would divide by zero');
});

test('CLIPImageProcessor: fromFile (file or folder), switches off, fixed-size resize, batches and their refusals', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-clip-proc-'));
  try {
    const cfg = path.join(dir, 'preprocessor_config.json');
    fs.writeFileSync(cfg, JSON.stringify({ size: 4, crop_size: 2, resample: 0 }));
    for (const p of [cfg, dir, `${dir}/`, `${dir}//`]) assert.deepEqual(CLIPImageProcessor.fromFile(p).config.crop_size, { height: 2, width: 2 }, p);
    const missing = path.join(dir, 'nope.json');
    assert.throws(() => CLIPImageProcessor.fromFile(missing), (e: unknown) => e instanceof FileFormatError && e.message === `${missing}: no such file`);
    const sub = path.join(dir, 'sub');
    fs.mkdirSync(path.join(sub, 'preprocessor_config.json'), { recursive: true });
    const inner = path.join(sub, 'preprocessor_config.json');
    assert.throws(() => CLIPImageProcessor.fromFile(sub), (e: unknown) => e instanceof FileFormatError && e.message === `${inner}: cannot read: EISDIR`);
    fs.writeFileSync(cfg, '{"size": 4,');
    assert.throws(() => CLIPImageProcessor.fromFile(cfg), (e: unknown) => e instanceof FileFormatError && e.message.startsWith(`${cfg}: not valid JSON (`));
    fs.writeFileSync(cfg, '{"size": 0}');
    assert.throws(() => CLIPImageProcessor.fromFile(dir), (e: unknown) => e instanceof FileFormatError && e.message === `${cfg} [size]: expected a positive integer, got 0`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  // every switch off: pixel_values are the raw bytes, CHW
  const off = new CLIPImageProcessor({ do_resize: false, do_center_crop: false, do_rescale: false, do_normalize: false });
  const im = rgb(2, 1, (i) => 10 * i);
  assert.deepEqual([...off.preprocess(im).data], [0, 30, 10, 40, 20, 50]);
  const half = new CLIPImageProcessor({ do_resize: false, do_center_crop: false, rescale_factor: 0.5, do_normalize: false });
  assert.deepEqual([...half.preprocess(im).data], [0, 15, 5, 20, 10, 25]);
  // a fixed {height, width} size ignores the aspect ratio; a shortest edge already at size keeps the image's size
  const fixed = new CLIPImageProcessor({ size: { height: 3, width: 5 }, do_center_crop: false, resample: 'nearest' });
  assert.deepEqual(fixed.resizeOutputSize(100, 7), [3, 5]);
  assert.deepEqual(fixed.preprocess(rgb(2, 2)).shape, [1, 3, 3, 5]);
  assert.deepEqual(shortestEdgeSize(8, 5, 5), [8, 5]);
  assert.deepEqual(shortestEdgeSize(5, 8, 5), [5, 8]);
  assert.deepEqual(shortestEdgeSize(10, 4, 6), [15, 6]);
  assert.deepEqual(shortestEdgeSize(4, 10, 6), [6, 15]);
  const p = new CLIPImageProcessor({ size: { shortest_edge: 4 }, do_center_crop: false, resample: 'nearest' });
  assert.deepEqual(p.preprocess(rgb(4, 8)).shape, [1, 3, 8, 4], 'one image, not in a list');
  inputError(() => p.preprocess([]), 'CLIPImageProcessor: no images given');
  inputError(() => p.preprocess([rgb(4, 8), rgb(8, 4)]), 'CLIPImageProcessor: image 1 comes out 8x4 but image 0 is 4x8; enable center crop or use images of one size');
});
