/**
 * `PIL.Image.resize` for 8-bit images, bit-exact with Pillow (checked against Pillow 9.4 goldens).
 *
 * What Pillow does (libImaging/Resample.c, Geometry.c, _imaging.c `_resize`):
 * - NEAREST is an affine "scale" transform: source x = trunc(box0 + a*(x+0.5)) with a = boxWidth/outWidth, where
 *   the position is accumulated by repeated addition in double (so it drifts exactly like Pillow's loop);
 *   pixels that fall outside the source are 0.
 * - Every other filter is a separable convolution. Per output pixel: center = box0 + (x+0.5)*scale, the filter
 *   support is widened by the downscale factor (antialiasing), taps run from trunc(center-support+0.5) to
 *   trunc(center+support+0.5) clipped to the image, the weights filter((i - center + 0.5)/filterscale) are
 *   normalised to sum 1 in double and then turned into fixed point with 22 fraction bits (PRECISION_BITS = 32-8-2),
 *   rounding half away from zero. Each pass accumulates int(pixel)*weight starting at 1<<21 (rounding), then
 *   shifts right by 22 and clips to 0..255: the intermediate image after the first pass is 8-bit.
 * - Horizontal pass first (only over the source rows the vertical pass will read), then vertical; a pass is
 *   skipped when its size is unchanged and the box covers the whole axis.
 * - `resize` returns a copy when the size and box are unchanged, and a plain crop when the box is integral and
 *   exactly the output size. `reducing_gap` is None by default, so no `reduce()` pre-pass happens.
 * RGBA/LA images are premultiplied by Pillow before filtering; that path is not reproduced here (inputs are RGB or L).
 */

export type PILResample = 'nearest' | 'box' | 'bilinear' | 'hamming' | 'bicubic' | 'lanczos';

/** PIL's `Image.Resampling` integer codes (what `resample: 3` in a preprocessor_config.json means). */
export const PIL_RESAMPLE_CODES: Readonly<Record<number, PILResample>> = {
  0: 'nearest', 1: 'lanczos', 2: 'bilinear', 3: 'bicubic', 4: 'box', 5: 'hamming',
};

/** An 8-bit image with interleaved channels (1 = L, 3 = RGB). */
export interface PixelImage {
  readonly width: number;
  readonly height: number;
  readonly data: Uint8Array;
}

/** The source region to resample, like PIL's `box=(left, upper, right, lower)` (floats allowed). */
export type ResizeBox = readonly [number, number, number, number];

interface Filter {
  readonly support: number;
  readonly fn: (x: number) => number;
}

// Hamming's window uses float literals in Pillow (0.54f, 0.46f), promoted to double in the expression.
const HAMMING_A = Math.fround(0.54);
const HAMMING_B = Math.fround(0.46);

function sinc(x: number): number {
  if (x === 0.0) return 1.0;
  x = x * Math.PI;
  return Math.sin(x) / x;
}

const FILTERS: Readonly<Record<Exclude<PILResample, 'nearest'>, Filter>> = {
  box: { support: 0.5, fn: (x) => (x > -0.5 && x <= 0.5 ? 1.0 : 0.0) },
  bilinear: {
    support: 1.0,
    fn: (x) => {
      if (x < 0.0) x = -x;
      return x < 1.0 ? 1.0 - x : 0.0;
    },
  },
  hamming: {
    support: 1.0,
    fn: (x) => {
      if (x < 0.0) x = -x;
      if (x === 0.0) return 1.0;
      if (x >= 1.0) return 0.0;
      x = x * Math.PI;
      return (Math.sin(x) / x) * (HAMMING_A + HAMMING_B * Math.cos(x));
    },
  },
  bicubic: {
    support: 2.0,
    // Keys' cubic convolution with a = -0.5 (Pillow's choice; OpenCV/torch use -0.75).
    fn: (x) => {
      const a = -0.5;
      if (x < 0.0) x = -x;
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    },
  },
  lanczos: {
    support: 3.0,
    fn: (x) => (-3.0 <= x && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0),
  },
};

const PRECISION_BITS = 32 - 8 - 2;
const ONE = 1 << PRECISION_BITS;
const HALF = 1 << (PRECISION_BITS - 1);

interface Coeffs {
  readonly ksize: number;
  /** Per output pixel: first source index, number of taps. */
  readonly bounds: Int32Array;
  /** outSize * ksize fixed-point weights. */
  readonly kk: Int32Array;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc. `in0`/`in1` are the box edges (C floats). */
export function precomputeCoeffs(inSize: number, in0: number, in1: number, outSize: number, filter: Filter): Coeffs {
  in0 = Math.fround(in0);
  in1 = Math.fround(in1);
  const scale = Math.fround(in1 - in0) / outSize; // (double)(in1 - in0): the difference is taken in float
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Int32Array(outSize * ksize);
  const w = new Float64Array(ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const v = filter.fn((x + xmin - center + 0.5) * ss);
      w[x] = v;
      ww += v;
    }
    for (let x = 0; x < xmax; x++) {
      let k = w[x]!;
      if (ww !== 0.0) k /= ww;
      // (int)(±0.5 + k * 2^22): round half away from zero by truncation
      kk[xx * ksize + x] = k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = Math.max(xmax, 0);
  }
  return { ksize, bounds, kk };
}

function clip8(ss: number): number {
  const v = ss >> PRECISION_BITS; // arithmetic shift: floor, as in C for int
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

/** Horizontal pass over source rows [offset, offset+outH). */
function resampleHorizontal(src: PixelImage, channels: number, outW: number, outH: number, offset: number, c: Coeffs): Uint8Array {
  const out = new Uint8Array(outW * outH * channels);
  const { ksize, bounds, kk } = c;
  const inRow = src.width * channels;
  const acc = new Int32Array(channels);
  for (let yy = 0; yy < outH; yy++) {
    const rowBase = (yy + offset) * inRow;
    for (let xx = 0; xx < outW; xx++) {
      const xmin = bounds[xx * 2]!;
      const xmax = bounds[xx * 2 + 1]!;
      const kBase = xx * ksize;
      acc.fill(HALF);
      for (let x = 0; x < xmax; x++) {
        const k = kk[kBase + x]!;
        const p = rowBase + (x + xmin) * channels;
        for (let ch = 0; ch < channels; ch++) acc[ch]! += src.data[p + ch]! * k;
      }
      const o = (yy * outW + xx) * channels;
      for (let ch = 0; ch < channels; ch++) out[o + ch] = clip8(acc[ch]!);
    }
  }
  return out;
}

/** Vertical pass; `bounds` index rows of `src`. */
function resampleVertical(src: PixelImage, channels: number, outH: number, c: Coeffs): Uint8Array {
  const w = src.width;
  const out = new Uint8Array(w * outH * channels);
  const { ksize, bounds, kk } = c;
  const rowLen = w * channels;
  const acc = new Int32Array(rowLen);
  for (let yy = 0; yy < outH; yy++) {
    const ymin = bounds[yy * 2]!;
    const ymax = bounds[yy * 2 + 1]!;
    const kBase = yy * ksize;
    acc.fill(HALF);
    for (let y = 0; y < ymax; y++) {
      const k = kk[kBase + y]!;
      const rowBase = (y + ymin) * rowLen;
      for (let i = 0; i < rowLen; i++) acc[i]! += src.data[rowBase + i]! * k;
    }
    const o = yy * rowLen;
    for (let i = 0; i < rowLen; i++) out[o + i] = clip8(acc[i]!);
  }
  return out;
}

function channelsOf(im: PixelImage): number {
  const n = im.width * im.height;
  const c = n > 0 ? im.data.length / n : 0;
  if (!Number.isInteger(im.width) || !Number.isInteger(im.height) || im.width <= 0 || im.height <= 0 || !Number.isInteger(c) || c < 1 || c > 4) {
    throw new Error(`pilResize: ${im.width}x${im.height} image with ${im.data.length} bytes is not 1-4 interleaved 8-bit channels`);
  }
  return c;
}

function nearest(im: PixelImage, channels: number, width: number, height: number, box: ResizeBox): Uint8Array {
  const [b0, b1, b2, b3] = box.map(Math.fround) as [number, number, number, number];
  const ax = Math.fround(b2 - b0) / width;
  const ay = Math.fround(b3 - b1) / height;
  const out = new Uint8Array(width * height * channels); // fill=1: outside the source is 0
  const xin = new Int32Array(width).fill(-1);
  let xo = b0 + ax * 0.5;
  for (let x = 0; x < width; x++) {
    const xi = xo < 0.0 ? -1 : Math.trunc(xo);
    if (xi >= 0 && xi < im.width) xin[x] = xi;
    xo += ax;
  }
  let yo = b1 + ay * 0.5;
  for (let y = 0; y < height; y++) {
    const yi = yo < 0.0 ? -1 : Math.trunc(yo);
    if (yi >= 0 && yi < im.height) {
      for (let x = 0; x < width; x++) {
        const xi = xin[x]!;
        if (xi < 0) continue;
        const s = (yi * im.width + xi) * channels;
        const o = (y * width + x) * channels;
        for (let ch = 0; ch < channels; ch++) out[o + ch] = im.data[s + ch]!;
      }
    }
    yo += ay;
  }
  return out;
}

function crop(im: PixelImage, channels: number, left: number, top: number, width: number, height: number): Uint8Array {
  const out = new Uint8Array(width * height * channels);
  for (let y = 0; y < height; y++) {
    const s = ((top + y) * im.width + left) * channels;
    out.set(im.data.subarray(s, s + width * channels), y * width * channels);
  }
  return out;
}

/**
 * `im.resize((width, height), resample, box)` of Pillow for an 8-bit L or RGB image.
 * Returns a new image (never the input's buffer).
 */
export function pilResize(im: PixelImage, width: number, height: number, resample: PILResample = 'bicubic', box?: ResizeBox): PixelImage {
  const channels = channelsOf(im);
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`pilResize: output size ${width}x${height} must be positive integers`);
  }
  const b: ResizeBox = box ?? [0, 0, im.width, im.height];
  if (b[0] < 0 || b[1] < 0) throw new Error('pilResize: box offset can\'t be negative');
  if (b[2] > im.width || b[3] > im.height) throw new Error('pilResize: box can\'t exceed original image size');
  if (b[2] - b[0] < 0 || b[3] - b[1] < 0) throw new Error('pilResize: box can\'t be empty');

  // Image.resize: unchanged size and full box -> copy
  if (width === im.width && height === im.height && b[0] === 0 && b[1] === 0 && b[2] === im.width && b[3] === im.height) {
    return { width, height, data: im.data.slice() };
  }
  // _imaging.c: an integral box of exactly the output size is a crop
  const fb = b.map(Math.fround) as [number, number, number, number];
  if (Number.isInteger(fb[0]) && fb[2] - fb[0] === width && Number.isInteger(fb[1]) && fb[3] - fb[1] === height) {
    return { width, height, data: crop(im, channels, fb[0], fb[1], width, height) };
  }
  if (resample === 'nearest') return { width, height, data: nearest(im, channels, width, height, b) };

  const filter = FILTERS[resample];
  if (!filter) throw new Error(`pilResize: unknown resample filter ${String(resample)}`);
  const needH = width !== im.width || fb[0] !== 0 || fb[2] !== width;
  const needV = height !== im.height || fb[1] !== 0 || fb[3] !== height;

  const vert = precomputeCoeffs(im.height, fb[1], fb[3], height, filter);
  const yFirst = vert.bounds[0]!;
  const yLast = vert.bounds[height * 2 - 2]! + vert.bounds[height * 2 - 1]!;

  let cur: PixelImage = im;
  let data: Uint8Array | undefined;
  if (needH) {
    const horiz = precomputeCoeffs(im.width, fb[0], fb[2], width, filter);
    for (let i = 0; i < height; i++) vert.bounds[i * 2]! -= yFirst; // rows of the temporary image
    data = resampleHorizontal(im, channels, width, yLast - yFirst, yFirst, horiz);
    cur = { width, height: yLast - yFirst, data };
  }
  if (needV) {
    data = resampleVertical(cur, channels, height, vert);
    cur = { width: cur.width, height, data };
  }
  return { width: cur.width, height: cur.height, data: data ?? im.data.slice() };
}
