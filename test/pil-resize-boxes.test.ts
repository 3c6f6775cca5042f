/**
 * pilResize with boxes the other Pillow tests never pass, each output worked out by hand from Pillow's C code
 * (_imaging.c `_resize`, Geometry.c `ImagingScaleAffine`, Resample.c `ImagingResampleInner`):
 * - a box of zero width or height is allowed (Pillow refuses only `box[2] - box[0] < 0`); NEAREST then reads the one
 *   source column trunc(box0) for every output x, and a column at x = width is outside the image: 0 (the fill);
 * - a crop whose rows stop above the last source row;
 * - the horizontal pass runs whenever the output width differs from the image's, even when the box's right edge
 *   equals the output width (and the vertical pass likewise for the height).
 * Milliseconds (mutation slice io-images).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { pilResize, type PixelImage } from '../src/io/pil-resize.js';

// 4x2 RGB, pixel (x, y) = [10y + x, 100 + 10y + x, 200 + 10y + x]
const W = 4, H = 2;
const px = (x: number, y: number): number[] => [10 * y + x, 100 + 10 * y + x, 200 + 10 * y + x];
const im: PixelImage = { width: W, height: H, data: Uint8Array.from([0, 1].flatMap((y) => [0, 1, 2, 3].flatMap((x) => px(x, y)))) };
const bytes = (r: PixelImage): [number, number, number[]] => [r.width, r.height, [...r.data]];

test('NEAREST with a zero-width or zero-height box: one source column or row, or black at the far edge', () => {
  // box (0, 0, 0, 2): a = 0, x position 0 -> column 0; rows 0.5, 1.5 -> 0, 1
  assert.deepEqual(bytes(pilResize(im, 2, 2, 'nearest', [0, 0, 0, 2])), [2, 2, [...px(0, 0), ...px(0, 0), ...px(0, 1), ...px(0, 1)]]);
  // box (4, 0, 4, 2): column 4 is outside the 4-wide image, so every pixel keeps the fill 0
  assert.deepEqual(bytes(pilResize(im, 2, 2, 'nearest', [4, 0, 4, 2])), [2, 2, new Array(12).fill(0)]);
  // box (0, 0, 4, 0): every output row reads source row 0
  assert.deepEqual(bytes(pilResize(im, 4, 2, 'nearest', [0, 0, 4, 0])), [4, 2, [0, 0].flatMap((y) => [0, 1, 2, 3].flatMap((x) => px(x, y)))]);
});

test('a crop that stops above the last row', () => {
  // integral box (1, 0, 3, 1) of exactly the output size 2x1: a crop of row 0, whatever the filter
  assert.deepEqual(bytes(pilResize(im, 2, 1, 'bilinear', [1, 0, 3, 1])), [2, 1, [...px(1, 0), ...px(2, 0)]]);
});

test('a pass is skipped only when its size is unchanged and the box spans the axis', () => {
  // 4x2 -> 2x1, BOX, box (0, 0, 2, 2): horizontally scale 1 over columns 0..1 (weights exactly 1), vertically rows 0
  // and 1 with weight 2^21 each: (2^21 + (p + p + 10) * 2^21) >> 22 = p + 5.
  assert.deepEqual(bytes(pilResize(im, 2, 1, 'box', [0, 0, 2, 2])), [2, 1, [...px(0, 0), ...px(1, 0)].map((v) => v + 5)]);
  // Rows of one colour each: 4x2 -> 2x1, BILINEAR, box (0, 0, 4, 1). The horizontal 2x reduction keeps each row's
  // colour (fixed-point weights 1797559 + 1797559 + 599186 = 2^22); vertically center 0.5 gives row 0 weight 1 and
  // row 1 weight 0, so the output is one row of row 0's colour.
  const rows: PixelImage = { width: 4, height: 2, data: Uint8Array.from([...new Array(4).fill([1, 2, 3]).flat(), ...new Array(4).fill([101, 102, 103]).flat()]) };
  assert.deepEqual(bytes(pilResize(rows, 2, 1, 'bilinear', [0, 0, 4, 1])), [2, 1, [1, 2, 3, 1, 2, 3]]);
});
