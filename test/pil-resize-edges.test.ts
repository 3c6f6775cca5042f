/**
 * pilResize's paths that the Pillow CRC goldens (image.test.ts) do not reach, each worked out by hand from Pillow's
 * documented rules: `Image.resize` returns a copy when size and box are unchanged, a plain crop when the box is
 * integral and exactly the output size, and NEAREST reads source x = trunc(box0 + (x + 0.5) * boxWidth / outWidth)
 * (the fractions below are exact in binary, so Pillow's accumulated position has no drift); 1-4 channel images;
 * and the argument errors. Milliseconds (mutation slice io-images).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { crc32 } from '../src/io/image.js';
import { LCG_H, LCG_W, lcgImageBytes } from './lcg-image.js';
import { pilResize, type PILResample, type PixelImage, type ResizeBox } from '../src/io/pil-resize.js';

// 4x2 RGB, pixel (x, y) = [10y + x, 100 + 10y + x, 200 + 10y + x]
const W = 4, H = 2;
const im: PixelImage = { width: W, height: H, data: Uint8Array.from({ length: W * H * 3 }, (_, i) => [0, 100, 200][i % 3]! + 10 * Math.floor(i / 3 / W) + (Math.floor(i / 3) % W)) };
const px = (x: number, y: number): number[] => [10 * y + x, 100 + 10 * y + x, 200 + 10 * y + x];
const image = (w: number, rows: number[][][]): number[] => { assert.equal(rows[0]!.length, w); return rows.flat(2); };

test('NEAREST with a box: source x = trunc(box0 + (x + 0.5) * boxW / outW), per axis', () => {
  // same output size as the image, but a box that is not the whole image: never the unchanged copy
  const cases: [readonly [number, number, number, number], number[], number[]][] = [
    [[1, 0, 4, 2], [1, 2, 2, 3], [0, 1]], // a = 3/4: 1.375, 2.125, 2.875, 3.625
    [[0, 0, 3, 2], [0, 1, 1, 2], [0, 1]], // 0.375, 1.125, 1.875, 2.625
    [[0, 1, 4, 2], [0, 1, 2, 3], [1, 1]], // a = 1/2 vertically: 1.25, 1.75
    [[0, 0, 4, 1], [0, 1, 2, 3], [0, 0]], // 0.25, 0.75
  ];
  for (const [box, xs, ys] of cases) {
    const r = pilResize(im, W, H, 'nearest', box);
    assert.deepEqual([r.width, r.height], [W, H]);
    assert.deepEqual([...r.data], image(W, ys.map((y) => xs.map((x) => px(x, y)))), `box ${box}`);
  }
  // 2x up: every source pixel twice per axis
  const up = pilResize(im, 8, 4, 'nearest');
  assert.deepEqual([...up.data], image(8, [0, 0, 1, 1].map((y) => [0, 0, 1, 1, 2, 2, 3, 3].map((x) => px(x, y)))));
});

test('an integral box of exactly the output size is a crop, whatever the filter; the full box at the same size is a copy', () => {
  for (const f of ['lanczos', 'bilinear', 'box'] as const) {
    const r = pilResize(im, 2, 1, f, [1, 1, 3, 2]);
    assert.deepEqual([...r.data], [...px(1, 1), ...px(2, 1)], f);
    const c = pilResize(im, 3, 2, f, [1, 0, 4, 2]);
    assert.deepEqual([...c.data], image(3, [0, 1].map((y) => [1, 2, 3].map((x) => px(x, y)))), f);
  }
  const same = pilResize(im, W, H, 'bicubic', [0, 0, W, H]);
  assert.deepEqual([...same.data], [...im.data]);
  assert.notEqual(same.data, im.data);
});

test('1 to 4 interleaved channels are resized; anything else and bad sizes or boxes are refused', () => {
  const grey: PixelImage = { width: 2, height: 1, data: Uint8Array.from([7, 9]) };
  assert.deepEqual([...pilResize(grey, 4, 1, 'nearest').data], [7, 7, 9, 9]);
  const rgba: PixelImage = { width: 2, height: 1, data: Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8]) };
  assert.deepEqual([...pilResize(rgba, 1, 1, 'nearest', [1, 0, 2, 1]).data], [5, 6, 7, 8]);
  const la: PixelImage = { width: 1, height: 2, data: Uint8Array.from([1, 2, 3, 4]) };
  assert.deepEqual([...pilResize(la, 1, 4, 'nearest').data], [1, 2, 1, 2, 3, 4, 3, 4]);
  const bad = (fn: () => unknown, message: string): void => assert.throws(fn, { message });
  bad(() => pilResize({ width: 0, height: 1, data: new Uint8Array(0) }, 1, 1), 'pilResize: 0x1 image with 0 bytes is not 1-4 interleaved 8-bit channels');
  bad(() => pilResize({ width: 1, height: 0, data: new Uint8Array(0) }, 1, 1), 'pilResize: 1x0 image with 0 bytes is not 1-4 interleaved 8-bit channels');
  bad(() => pilResize({ width: 1.5, height: 2, data: new Uint8Array(3) }, 1, 1), 'pilResize: 1.5x2 image with 3 bytes is not 1-4 interleaved 8-bit channels');
  bad(() => pilResize({ width: 2, height: 0.5, data: new Uint8Array(3) }, 1, 1), 'pilResize: 2x0.5 image with 3 bytes is not 1-4 interleaved 8-bit channels');
  bad(() => pilResize({ width: 1, height: 1, data: new Uint8Array(5) }, 1, 1), 'pilResize: 1x1 image with 5 bytes is not 1-4 interleaved 8-bit channels');
  bad(() => pilResize({ width: 2, height: 1, data: new Uint8Array(3) }, 1, 1), 'pilResize: 2x1 image with 3 bytes is not 1-4 interleaved 8-bit channels');
  bad(() => pilResize({ width: 1, height: 1, data: new Uint8Array(0) }, 1, 1), 'pilResize: 1x1 image with 0 bytes is not 1-4 interleaved 8-bit channels');
  for (const [w, h] of [[0, 1], [1, 0], [1.5, 1], [1, 2.5]] as const) bad(() => pilResize(im, w, h), `pilResize: output size ${w}x${h} must be positive integers`);
  bad(() => pilResize(im, 2, 2, 'bilinear', [-1, 0, 2, 2]), 'pilResize: box offset can\'t be negative');
  bad(() => pilResize(im, 2, 2, 'bilinear', [0, -0.5, 2, 2]), 'pilResize: box offset can\'t be negative');
  bad(() => pilResize(im, 2, 2, 'bilinear', [0, 0, 5, 2]), 'pilResize: box can\'t exceed original image size');
  bad(() => pilResize(im, 2, 2, 'bilinear', [0, 0, 4, 3]), 'pilResize: box can\'t exceed original image size');
  bad(() => pilResize(im, 2, 2, 'bilinear', [3, 0, 2, 2]), 'pilResize: box can\'t be empty');
  bad(() => pilResize(im, 2, 2, 'bilinear', [0, 2, 4, 1]), 'pilResize: box can\'t be empty');
  bad(() => pilResize(im, 2, 2, 'cubic' as never), 'pilResize: unknown resample filter cubic');
});

test('every filter against Pillow 9.4 where the passes may be skipped or taps land on filter edges (CRC32 of the bytes)', () => {
  // The 23x17 LCG image of image.test.ts; CRCs from Pillow 9.4.0: Image.frombytes('RGB', (23, 17), data)
  // .resize((w, h), resample, box).tobytes(). Same-size boxes with one offset edge (one pass only), exact 2x / 4x
  // up- and downscales (taps at the filters' support edges), a 3x2 thumbnail (taps clipped at the image border).
  const w = LCG_W, h = LCG_H;
  const data = lcgImageBytes();
  assert.equal(crc32(data), 0x5afe832a);
  const cases: [PILResample, number, number, ResizeBox | undefined, number][] = [
    ['box', 23, 17, [0.5, 0, 23, 17], 0x5afe832a],
    ['box', 23, 17, [0, 0.25, 23, 17], 0x5afe832a],
    ['box', 23, 17, [0, 0, 22.5, 17], 0x5afe832a],
    ['box', 23, 17, [0, 0, 23, 16.75], 0x5afe832a],
    ['box', 46, 34, undefined, 0x78dbc5d0],
    ['box', 92, 17, undefined, 0x86181622],
    ['box', 11, 17, [0, 0, 22, 17], 0x168ced78],
    ['box', 5, 17, [1, 0, 21, 17], 0xa14eeef5],
    ['box', 23, 5, [0, 2, 23, 12], 0x6f923e82],
    ['box', 3, 2, undefined, 0x5f2ecccc],
    ['bilinear', 23, 17, [0.5, 0, 23, 17], 0xd1f0136d],
    ['bilinear', 23, 17, [0, 0.25, 23, 17], 0xefb102f5],
    ['bilinear', 23, 17, [0, 0, 22.5, 17], 0x32ba3d19],
    ['bilinear', 23, 17, [0, 0, 23, 16.75], 0x5918e77a],
    ['bilinear', 46, 34, undefined, 0xd0d13bb2],
    ['bilinear', 92, 17, undefined, 0x8563a638],
    ['bilinear', 11, 17, [0, 0, 22, 17], 0x89055905],
    ['bilinear', 5, 17, [1, 0, 21, 17], 0x9188bfcf],
    ['bilinear', 23, 5, [0, 2, 23, 12], 0x8df3b378],
    ['bilinear', 3, 2, undefined, 0x4ca7caca],
    ['hamming', 23, 17, [0.5, 0, 23, 17], 0x00d8234c],
    ['hamming', 23, 17, [0, 0.25, 23, 17], 0x6e8bb5a1],
    ['hamming', 23, 17, [0, 0, 22.5, 17], 0x030bfbfb],
    ['hamming', 23, 17, [0, 0, 23, 16.75], 0xfc1f82f5],
    ['hamming', 46, 34, undefined, 0xc5411708],
    ['hamming', 92, 17, undefined, 0xf0915072],
    ['hamming', 11, 17, [0, 0, 22, 17], 0xaca4744b],
    ['hamming', 5, 17, [1, 0, 21, 17], 0xaf3fd10c],
    ['hamming', 23, 5, [0, 2, 23, 12], 0x3a611430],
    ['hamming', 3, 2, undefined, 0x9a3fa99e],
    ['bicubic', 23, 17, [0.5, 0, 23, 17], 0x9a961291],
    ['bicubic', 23, 17, [0, 0.25, 23, 17], 0xc14f566d],
    ['bicubic', 23, 17, [0, 0, 22.5, 17], 0x0d5ab265],
    ['bicubic', 23, 17, [0, 0, 23, 16.75], 0xe054b7d0],
    ['bicubic', 46, 34, undefined, 0x8d68bedf],
    ['bicubic', 92, 17, undefined, 0x226c7fc0],
    ['bicubic', 11, 17, [0, 0, 22, 17], 0xcafd204d],
    ['bicubic', 5, 17, [1, 0, 21, 17], 0xa1ffa687],
    ['bicubic', 23, 5, [0, 2, 23, 12], 0x125f68b8],
    ['bicubic', 3, 2, undefined, 0x45cac0b6],
    ['lanczos', 23, 17, [0.5, 0, 23, 17], 0xd90e18cb],
    ['lanczos', 23, 17, [0, 0.25, 23, 17], 0x9bd635c2],
    ['lanczos', 23, 17, [0, 0, 22.5, 17], 0x07630a1d],
    ['lanczos', 23, 17, [0, 0, 23, 16.75], 0x15cb2377],
    ['lanczos', 46, 34, undefined, 0x47efd1e0],
    ['lanczos', 92, 17, undefined, 0x62224606],
    ['lanczos', 11, 17, [0, 0, 22, 17], 0x2f117468],
    ['lanczos', 5, 17, [1, 0, 21, 17], 0x029e376f],
    ['lanczos', 23, 5, [0, 2, 23, 12], 0x25172df7],
    ['lanczos', 3, 2, undefined, 0xce93bff5]
  ];
  const wrong = cases.filter(([f, ow, oh, b, want]) => crc32(pilResize({ width: w, height: h, data }, ow, oh, f, b).data) !== want)
    .map(([f, ow, oh, b]) => `${f} ${ow}x${oh}${b ? ` box ${b}` : ''}`);
  assert.deepEqual(wrong, []);
});
