/**
 * CLIPImageProcessor edges the other image tests leave open, each worked out by hand from transformers' rules:
 * a center crop more than two rows / columns larger than the image on each side (zero padding, the image in the
 * middle), sizes of 1 accepted, a non-finite mean refused, a folder given with trailing slashes, and a batch whose
 * images come out of different heights or widths. Milliseconds (mutation slice io-images).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLIPImageProcessor, centerCrop, parseCLIPImageProcessorConfig } from '../src/io/clip-image-processor.js';
import type { RGBImage } from '../src/io/image.js';

const rgb = (width: number, height: number, seed = 1): RGBImage => ({ width, height, data: Uint8Array.from({ length: width * height * 3 }, (_, i) => 1 + ((i * 37 + seed * 11) % 250)) });

test('center crop 6x6 of a 2x2 image: offsets -2, zeros around the image at rows / columns 2..3', () => {
  const im = rgb(2, 2);
  const out = centerCrop(im, 6, 6);
  const want = new Uint8Array(6 * 6 * 3);
  for (let y = 0; y < 2; y++) want.set(im.data.subarray(y * 6, y * 6 + 6), ((y + 2) * 6 + 2) * 3);
  assert.deepEqual([out.width, out.height], [6, 6]);
  assert.deepEqual([...out.data], [...want]);
});

test('config: sizes of 1 are positive integers; a non-finite mean is refused', () => {
  const c = parseCLIPImageProcessorConfig({ size: { shortest_edge: 1 }, crop_size: 1 });
  assert.deepEqual([c.size, c.crop_size], [{ shortest_edge: 1 }, { height: 1, width: 1 }]);
  assert.throws(() => parseCLIPImageProcessorConfig({ image_mean: [Infinity, 0.5, 0.5] }, 'p.json'), {
    name: 'FileFormatError', message: 'p.json [image_mean]: expected 3 numbers (one per RGB channel), got [null,0.5,0.5]',
  });
});

test('fromFile: a folder with trailing slashes names its preprocessor_config.json once', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-clipproc-'));
  try {
    fs.writeFileSync(path.join(dir, 'preprocessor_config.json'), '{"crop_size": 0}');
    assert.throws(() => CLIPImageProcessor.fromFile(`${dir}//`), { message: `${dir}/preprocessor_config.json [crop_size]: expected a positive integer, got 0` });
  } finally { fs.rmSync(dir, { recursive: true, force: true }); }
});

test('a batch must come out of one size: a different height alone or a different width alone is refused', () => {
  const p = new CLIPImageProcessor({ do_resize: false, do_center_crop: false });
  assert.deepEqual(p.preprocess([rgb(2, 2), rgb(2, 2, 2)]).shape, [2, 3, 2, 2]);
  assert.throws(() => p.preprocess([rgb(2, 2), rgb(2, 3)]), { name: 'InputError', message: 'CLIPImageProcessor: image 1 comes out 2x3 but image 0 is 2x2; enable center crop or use images of one size' });
  assert.throws(() => p.preprocess([rgb(2, 2), rgb(3, 2)]), { name: 'InputError', message: 'CLIPImageProcessor: image 1 comes out 3x2 but image 0 is 2x2; enable center crop or use images of one size' });
});
