/**
 * torch.nn.functional.interpolate(x, size=(h, w)) with its default mode 'nearest' (the legacy one, not
 * 'nearest-exact'), as torch computes source indices on CPU: scale = (float) in / out, then
 * src = min(floor(dst * scale), in - 1) in float32; out == in copies and out == 2 * in halves the index.
 * Nearest sampling commutes with any per-pixel map, so it is applied to the 8-bit image itself.
 */
import { assertRGB, type RGBImage } from './image.js';

/** Source index of each output index along one axis. */
export function torchNearestIndices(inSize: number, outSize: number): Int32Array {
  const idx = new Int32Array(outSize);
  const scale = Math.fround(inSize / outSize);
  for (let i = 0; i < outSize; i++) {
    if (outSize === inSize) idx[i] = i;
    else if (outSize === 2 * inSize) idx[i] = i >> 1;
    else idx[i] = Math.min(Math.floor(Math.fround(i * scale)), inSize - 1);
  }
  return idx;
}

export function torchNearestResize(image: RGBImage, width: number, height: number): RGBImage {
  assertRGB(image);
  if (width === image.width && height === image.height) return image;
  const ys = torchNearestIndices(image.height, height), xs = torchNearestIndices(image.width, width);
  const data = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const s = (ys[y]! * image.width + xs[x]!) * 3, d = (y * width + x) * 3;
      data[d] = image.data[s]!; data[d + 1] = image.data[s + 1]!; data[d + 2] = image.data[s + 2]!;
    }
  }
  return { width, height, data };
}
