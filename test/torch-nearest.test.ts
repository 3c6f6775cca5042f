/**
 * torch.nn.functional.interpolate(mode='nearest') source indices as torch computes them on CPU (scale = (float) in /
 * out, src = min(floor(dst * scale), in - 1) in float32; out == 2 * in halves the index), worked out separately with
 * float32 rounding in Python; and the resize of an 8-bit RGB image through them (milliseconds).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { torchNearestIndices, torchNearestResize } from '../src/io/torch-nearest.js';

test('source indices: float32 scale and product (26 -> 22 picks row 12 at 11, not 13), doubling, identity', () => {
  const idx = (i: number, o: number): number[] => [...torchNearestIndices(i, o)];
  // 26 / 22 in float32 is 1.18181813; 11 * that rounds to 12.9999995 in float32: floor 12 (exact arithmetic says 13).
  assert.deepEqual(idx(26, 22), [0, 1, 2, 3, 4, 5, 7, 8, 9, 10, 11, 12, 14, 15, 16, 17, 18, 20, 21, 22, 23, 24]);
  // 30 / 22 in float32 is above the exact value: 11 * it is exactly 15 (float64 1.3636... * 11 gives 14.99...).
  assert.deepEqual(idx(30, 22), [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 15, 16, 17, 19, 20, 21, 23, 24, 25, 27, 28]);
  // 2 / 50 in float32 is 0.039999999; 25 * that is 0.99999998 in float64 but rounds to 1 in float32: row 1.
  assert.deepEqual(idx(2, 50).slice(23, 27), [0, 0, 1, 1]);
  assert.deepEqual(idx(3, 6), [0, 0, 1, 1, 2, 2]);
  assert.deepEqual(idx(4, 8), [0, 0, 1, 1, 2, 2, 3, 3]);
  assert.deepEqual(idx(3, 7), [0, 0, 0, 1, 1, 2, 2]);
  assert.deepEqual(idx(2, 5), [0, 0, 0, 1, 1]);
  assert.deepEqual(idx(10, 3), [0, 3, 6]);
  assert.deepEqual(idx(7, 5), [0, 1, 2, 4, 5]);
  assert.deepEqual(idx(5, 5), [0, 1, 2, 3, 4]);
  assert.deepEqual(idx(5, 1), [0]);
  assert.ok(torchNearestIndices(4, 3) instanceof Int32Array);
});

test('resize: each output pixel is the source pixel at (row index, column index); same size is the image itself', () => {
  // 3 wide, 2 high; pixel (x, y) = [10x + y, 100 + 10x + y, 200 + y].
  const px = (x: number, y: number): number[] => [10 * x + y, 100 + 10 * x + y, 200 + y];
  const data = new Uint8Array(3 * 2 * 3);
  for (let y = 0; y < 2; y++) for (let x = 0; x < 3; x++) data.set(px(x, y), (y * 3 + x) * 3);
  const img = { width: 3, height: 2, data };
  assert.equal(torchNearestResize(img, 3, 2), img);
  // width 3 -> 7: columns [0, 0, 0, 1, 1, 2, 2]; height 2 -> 3: rows [0, 0, 1].
  const out = torchNearestResize(img, 7, 3);
  assert.equal(out.width, 7);
  assert.equal(out.height, 3);
  const cols = [0, 0, 0, 1, 1, 2, 2], rows = [0, 0, 1];
  assert.deepEqual([...out.data], rows.flatMap((y) => cols.flatMap((x) => px(x, y))));
  // Width changed, height unchanged (width 3 -> 6: columns [0, 0, 1, 1, 2, 2]): resized, not returned as is.
  assert.deepEqual([...torchNearestResize(img, 6, 2).data], [0, 1].flatMap((y) => [0, 0, 1, 1, 2, 2].flatMap((x) => px(x, y))));
  // Down in one axis only (height 2 -> 1: row 0), width unchanged.
  assert.deepEqual([...torchNearestResize(img, 3, 1).data], [0, 1, 2].flatMap((x) => px(x, 0)));
  // Width unchanged, height doubled: the index halves.
  assert.deepEqual([...torchNearestResize(img, 3, 4).data], [0, 0, 1, 1].flatMap((y) => [0, 1, 2].flatMap((x) => px(x, y))));
  assert.throws(() => torchNearestResize({ width: 2, height: 2, data: new Uint8Array(5) }, 4, 4), { message: 'image: 2x2 RGB needs 12 bytes, got 5' });
});
