/**
 * diffusers' VaeImageProcessor for PIL-style inputs and outputs:
 *   preprocess: size floored to a multiple of vae_scale_factor -> PIL resize (lanczos by default) when the size
 *               differs -> uint8 / 255 in float32 -> 2x - 1 -> NCHW
 *   postprocess: (x / 2 + 0.5).clamp(0, 1) -> NHWC ('np') -> (x * 255).round() as uint8 ('pil'), numpy's round
 *               half to even on float32 values.
 */
import { InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { assertRGB, type RGBImage } from './image.js';
import { pilResize, type PILResample } from './pil-resize.js';

export interface VaeImageProcessorConfig {
  readonly do_resize: boolean;
  /** 2 ** (len(vae.config.block_out_channels) - 1): 8 for SD 1.x/2.x, 4 for the tiny test VAE. */
  readonly vae_scale_factor: number;
  readonly resample: PILResample;
  readonly do_normalize: boolean;
}

export const VAE_IMAGE_PROCESSOR_DEFAULTS: VaeImageProcessorConfig = {
  do_resize: true,
  vae_scale_factor: 8,
  resample: 'lanczos',
  do_normalize: true,
};

/** Throws an InputError unless width and height are multiples of `factor` (the latent grid). */
export function checkDivisible(width: number, height: number, factor: number, what = 'the VAE factor'): void {
  for (const [name, v] of [['width', width], ['height', height]] as const) {
    if (!Number.isSafeInteger(v) || v < 1) throw new InputError(`${name} ${v} is not a positive integer`);
    if (v % factor !== 0) {
      const lo = v - (v % factor);
      const hi = lo + factor;
      throw new InputError(`${name} ${v} is not divisible by ${factor} (${what}); use ${lo > 0 ? `${lo} or ${hi}` : hi}`);
    }
  }
}

/** numpy's np.round (half to even) of a float32 value already rounded to float32. */
export function roundHalfEven(v: number): number {
  const r = Math.round(v); // half up
  return r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/**
 * `VaeImageProcessor.numpy_to_pil`: [B, H, W, 3] floats in [0, 1] to uint8 images by
 * `(images * 255).round().astype('uint8')` in float32. Values are expected in [0, 1] (postprocess clamps);
 * out-of-range values are clipped here rather than wrapped as numpy's cast would.
 */
export function numpyToPil(images: Tensor): RGBImage[] {
  const [b, h, w, c] = images.shape;
  if (images.shape.length !== 4 || c !== 3) throw new Error(`numpyToPil: expected [B, H, W, 3], got [${images.shape.join(', ')}]`);
  const per = h! * w! * 3;
  const out: RGBImage[] = [];
  for (let i = 0; i < b!; i++) {
    const data = new Uint8Array(per);
    const src = images.data.subarray(i * per, (i + 1) * per);
    for (let j = 0; j < per; j++) {
      const v = roundHalfEven(Math.fround(src[j]! * 255));
      data[j] = v > 0 ? (v < 255 ? v : 255) : 0; // NaN -> 0
    }
    out.push({ width: w!, height: h!, data });
  }
  return out;
}

export class VaeImageProcessor {
  readonly config: VaeImageProcessorConfig;

  constructor(config: Partial<VaeImageProcessorConfig> = {}) {
    this.config = { ...VAE_IMAGE_PROCESSOR_DEFAULTS, ...config };
    if (!Number.isSafeInteger(this.config.vae_scale_factor) || this.config.vae_scale_factor < 1) {
      throw new Error(`VaeImageProcessor: vae_scale_factor ${this.config.vae_scale_factor} must be a positive integer`);
    }
  }

  /** get_default_height_width: the image's size where none is given, then floored to a multiple of the factor. */
  defaultHeightWidth(image: RGBImage, height?: number, width?: number): { height: number; width: number } {
    const f = this.config.vae_scale_factor;
    const h = height ?? image.height;
    const w = width ?? image.width;
    return { height: h - (h % f), width: w - (w % f) };
  }

  /** PIL resize with the configured filter (PIL itself returns a copy when the size is unchanged). */
  resize(image: RGBImage, height: number, width: number): RGBImage {
    return pilResize(image, width, height, this.config.resample);
  }

  /** Images to a [B, 3, H, W] float32 tensor in [-1, 1]; all images are resized to the first one's target size. */
  preprocess(images: RGBImage | readonly RGBImage[], opts: { height?: number; width?: number } = {}): Tensor {
    let list = Array.isArray(images) ? (images as readonly RGBImage[]) : [images as RGBImage];
    if (list.length === 0) throw new InputError('VaeImageProcessor: no images given');
    list.forEach((im, i) => assertRGB(im, `image ${i}`));
    if (this.config.do_resize) {
      const { height, width } = this.defaultHeightWidth(list[0]!, opts.height, opts.width);
      if (height < 1 || width < 1) {
        throw new InputError(`image size ${width}x${height} is smaller than the VAE factor ${this.config.vae_scale_factor}`);
      }
      list = list.map((im) => this.resize(im, height, width));
    }
    const { height, width } = list[0]!;
    for (const [i, im] of list.entries()) {
      if (im.height !== height || im.width !== width) throw new InputError(`image ${i} is ${im.width}x${im.height} but image 0 is ${width}x${height}`);
    }
    const n = height * width;
    const data = new Float32Array(list.length * 3 * n);
    list.forEach((im, b) => {
      for (let ch = 0; ch < 3; ch++) {
        const o = (b * 3 + ch) * n;
        for (let i = 0; i < n; i++) {
          const x = Math.fround(im.data[i * 3 + ch]! / 255); // np.float32 / 255.0 -> float32
          // 2.0 * x - 1.0 in float32 (2x is exact, the subtraction rounds once)
          data[o + i] = this.config.do_normalize ? 2 * x - 1 : x;
        }
      }
    });
    return { shape: [list.length, 3, height, width], data };
  }

  /** postprocess(..., output_type='np'): [B, 3, H, W] -> [B, H, W, 3] float32 in [0, 1]. */
  postprocessNp(image: Tensor): Tensor {
    const [b, c, h, w] = image.shape;
    if (image.shape.length !== 4 || c !== 3) throw new Error(`VaeImageProcessor.postprocess: expected [B, 3, H, W], got [${image.shape.join(', ')}]`);
    const n = h! * w!;
    const out = new Float32Array(b! * n * 3);
    for (let bi = 0; bi < b!; bi++) {
      for (let ch = 0; ch < 3; ch++) {
        const src = (bi * 3 + ch) * n;
        for (let i = 0; i < n; i++) {
          let v = image.data[src + i]!;
          if (this.config.do_normalize) {
            v = Math.fround(v / 2 + 0.5); // v / 2 is exact in float32; one rounding for the add
            v = v < 0 ? 0 : v > 1 ? 1 : v; // clamp keeps NaN
          }
          out[(bi * n + i) * 3 + ch] = v;
        }
      }
    }
    return { shape: [b!, h!, w!, 3], data: out };
  }

  /** postprocess(..., output_type='pil'): [B, 3, H, W] decoder output -> uint8 RGB images. */
  postprocess(image: Tensor): RGBImage[] {
    return numpyToPil(this.postprocessNp(image));
  }
}
