/**
 * transformers' CLIPImageProcessor (the `feature_extractor/preprocessor_config.json` of SD checkpoints and of
 * IP-Adapter image encoders), reproduced step for step:
 *   convert RGB -> resize (PIL, short side = shortest_edge, long side int(shortest_edge * long / short))
 *   -> center crop (top = (h - crop_h) // 2, zero padding where the image is smaller than the crop)
 *   -> rescale (uint8 * rescale_factor in float64, then float32) -> normalize ((x - mean) / std in float32)
 *   -> HWC to CHW.
 */
import fs from 'node:fs';
import { FileFormatError, InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';
import { assertRGB, type RGBImage } from './image.js';
import { PIL_RESAMPLE_CODES, pilResize, type PILResample } from './pil-resize.js';

export const OPENAI_CLIP_MEAN: readonly number[] = [0.48145466, 0.4578275, 0.40821073];
export const OPENAI_CLIP_STD: readonly number[] = [0.26862954, 0.26130258, 0.27577711];

export type ResizeSize = { readonly shortest_edge: number } | { readonly height: number; readonly width: number };

/** The keys of preprocessor_config.json that matter, normalised (ints expanded to dicts, resample to a name). */
export interface CLIPImageProcessorConfig {
  readonly do_resize: boolean;
  readonly size: ResizeSize;
  readonly resample: PILResample;
  readonly do_center_crop: boolean;
  readonly crop_size: { readonly height: number; readonly width: number };
  readonly do_rescale: boolean;
  readonly rescale_factor: number;
  readonly do_normalize: boolean;
  readonly image_mean: readonly number[];
  readonly image_std: readonly number[];
  readonly do_convert_rgb: boolean;
}

/** CLIPImageProcessor's defaults (transformers), used for keys a config leaves out. */
export const CLIP_IMAGE_PROCESSOR_DEFAULTS: CLIPImageProcessorConfig = {
  do_resize: true,
  size: { shortest_edge: 224 },
  resample: 'bicubic',
  do_center_crop: true,
  crop_size: { height: 224, width: 224 },
  do_rescale: true,
  rescale_factor: 1 / 255,
  do_normalize: true,
  image_mean: OPENAI_CLIP_MEAN,
  image_std: OPENAI_CLIP_STD,
  do_convert_rgb: true,
};

/** Every stage of one image, for tests and debugging. */
export interface CLIPStages {
  readonly resized: RGBImage;
  readonly cropped: RGBImage;
  /** HWC float32 after rescale (equal to `cropped` as floats when do_rescale is off). */
  readonly rescaled: Float32Array;
  /** CHW float32: what goes into the batch. */
  readonly pixelValues: Float32Array;
  readonly height: number;
  readonly width: number;
}

/**
 * transformers' get_resize_output_image_size with default_to_square=False: the short side becomes `shortEdge`,
 * the long side `int(shortEdge * long / short)` (true division in double, truncated). Returns [height, width].
 */
export function shortestEdgeSize(height: number, width: number, shortEdge: number): [number, number] {
  const [short, long] = width <= height ? [width, height] : [height, width];
  if (short === shortEdge) return [height, width];
  const newLong = Math.trunc((shortEdge * long) / short);
  return width <= height ? [newLong, shortEdge] : [shortEdge, newLong];
}

/**
 * transformers' center_crop: window starts at floor((h - ch) / 2), floor((w - cw) / 2); where the image is smaller
 * than the crop it is zero-padded (ceil of half the difference on the top/left), which amounts to the same
 * offsets with zeros outside the image.
 */
export function centerCrop(image: RGBImage, cropHeight: number, cropWidth: number): RGBImage {
  assertRGB(image);
  const top = Math.floor((image.height - cropHeight) / 2);
  const left = Math.floor((image.width - cropWidth) / 2);
  const out = new Uint8Array(cropHeight * cropWidth * 3);
  for (let y = 0; y < cropHeight; y++) {
    const sy = y + top;
    if (sy < 0 || sy >= image.height) continue;
    const x0 = Math.max(0, -left);
    const x1 = Math.min(cropWidth, image.width - left);
    if (x1 <= x0) continue;
    const s = (sy * image.width + left + x0) * 3;
    out.set(image.data.subarray(s, s + (x1 - x0) * 3), (y * cropWidth + x0) * 3);
  }
  return { width: cropWidth, height: cropHeight, data: out };
}

function bad(file: string, key: string, detail: string): never {
  throw new FileFormatError(file, detail, key);
}

function posInt(v: unknown, file: string, key: string): number {
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < 1) bad(file, key, `expected a positive integer, got ${JSON.stringify(v)}`);
  return v;
}

function bool(raw: Record<string, unknown>, key: keyof CLIPImageProcessorConfig, file: string): boolean {
  const v = raw[key];
  if (v === undefined || v === null) return CLIP_IMAGE_PROCESSOR_DEFAULTS[key] as boolean;
  if (typeof v !== 'boolean') bad(file, key, `expected true or false, got ${JSON.stringify(v)}`);
  return v;
}

function triple(raw: Record<string, unknown>, key: 'image_mean' | 'image_std', file: string): readonly number[] {
  const v = raw[key];
  if (v === undefined || v === null) return CLIP_IMAGE_PROCESSOR_DEFAULTS[key];
  const arr = typeof v === 'number' ? [v, v, v] : Array.isArray(v) && v.length === 1 ? [v[0], v[0], v[0]] : v;
  if (!Array.isArray(arr) || arr.length !== 3 || !arr.every((x) => typeof x === 'number' && Number.isFinite(x))) {
    bad(file, key, `expected 3 numbers (one per RGB channel), got ${JSON.stringify(v)}`);
  }
  if (key === 'image_std' && arr.some((x) => x === 0)) bad(file, key, 'a standard deviation of 0 would divide by zero');
  return arr as number[];
}

/** Validate and normalise a parsed preprocessor_config.json (`file` names it in errors). */
export function parseCLIPImageProcessorConfig(raw: unknown, file = 'preprocessor_config.json'): CLIPImageProcessorConfig {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new FileFormatError(file, 'expected a JSON object');
  const r = raw as Record<string, unknown>;
  const D = CLIP_IMAGE_PROCESSOR_DEFAULTS;

  let size: ResizeSize = D.size;
  if (r.size !== undefined && r.size !== null) {
    const s = r.size as Record<string, unknown>;
    if (typeof r.size === 'number') size = { shortest_edge: posInt(r.size, file, 'size') };
    else if (typeof s === 'object' && 'shortest_edge' in s) size = { shortest_edge: posInt(s.shortest_edge, file, 'size.shortest_edge') };
    else if (typeof s === 'object' && 'height' in s && 'width' in s) size = { height: posInt(s.height, file, 'size.height'), width: posInt(s.width, file, 'size.width') };
    else bad(file, 'size', `expected an integer, {"shortest_edge": n} or {"height": h, "width": w}, got ${JSON.stringify(r.size)}`);
  }

  let crop = D.crop_size;
  if (r.crop_size !== undefined && r.crop_size !== null) {
    const c = r.crop_size as Record<string, unknown>;
    if (typeof r.crop_size === 'number') { const n = posInt(r.crop_size, file, 'crop_size'); crop = { height: n, width: n }; }
    else if (typeof c === 'object' && 'height' in c && 'width' in c) crop = { height: posInt(c.height, file, 'crop_size.height'), width: posInt(c.width, file, 'crop_size.width') };
    else bad(file, 'crop_size', `expected an integer or {"height": h, "width": w}, got ${JSON.stringify(r.crop_size)}`);
  }

  let resample = D.resample;
  if (r.resample !== undefined && r.resample !== null) {
    const name = typeof r.resample === 'number' ? PIL_RESAMPLE_CODES[r.resample] : undefined;
    if (!name) bad(file, 'resample', `expected a PIL resampling code 0-5 (3 = bicubic), got ${JSON.stringify(r.resample)}`);
    resample = name;
  }

  let rescaleFactor = D.rescale_factor;
  if (r.rescale_factor !== undefined && r.rescale_factor !== null) {
    if (typeof r.rescale_factor !== 'number' || !Number.isFinite(r.rescale_factor)) bad(file, 'rescale_factor', `expected a number, got ${JSON.stringify(r.rescale_factor)}`);
    rescaleFactor = r.rescale_factor;
  }

  return {
    do_resize: bool(r, 'do_resize', file),
    size,
    resample,
    do_center_crop: bool(r, 'do_center_crop', file),
    crop_size: crop,
    do_rescale: bool(r, 'do_rescale', file),
    rescale_factor: rescaleFactor,
    do_normalize: bool(r, 'do_normalize', file),
    image_mean: triple(r, 'image_mean', file),
    image_std: triple(r, 'image_std', file),
    do_convert_rgb: bool(r, 'do_convert_rgb', file),
  };
}

export class CLIPImageProcessor {
  readonly config: CLIPImageProcessorConfig;

  constructor(config: Partial<CLIPImageProcessorConfig> = {}) {
    this.config = { ...CLIP_IMAGE_PROCESSOR_DEFAULTS, ...config };
  }

  /** Load `preprocessor_config.json` (a file, or the folder holding it). */
  static fromFile(path: string): CLIPImageProcessor {
    let file = path;
    try {
      if (fs.statSync(path).isDirectory()) file = `${path.replace(/\/+$/, '')}/preprocessor_config.json`;
    } catch { /* reported below */ }
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new FileFormatError(file, code === 'ENOENT' ? 'no such file' : `cannot read: ${code ?? String(e)}`);
    }
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new FileFormatError(file, `not valid JSON (${(e as Error).message})`);
    }
    return new CLIPImageProcessor(parseCLIPImageProcessorConfig(raw, file));
  }

  /** Output [height, width] of the resize step for an image of this size. */
  resizeOutputSize(height: number, width: number): [number, number] {
    const s = this.config.size;
    return 'shortest_edge' in s ? shortestEdgeSize(height, width, s.shortest_edge) : [s.height, s.width];
  }

  resize(image: RGBImage): RGBImage {
    assertRGB(image);
    const [h, w] = this.resizeOutputSize(image.height, image.width);
    // transformers always goes through PIL's resize; PIL returns a copy when the size is unchanged.
    return pilResize(image, w, h, this.config.resample);
  }

  centerCrop(image: RGBImage): RGBImage {
    return centerCrop(image, this.config.crop_size.height, this.config.crop_size.width);
  }

  /** All stages for one image. */
  stages(image: RGBImage): CLIPStages {
    assertRGB(image);
    const c = this.config;
    const resized = c.do_resize ? this.resize(image) : image;
    const cropped = c.do_center_crop ? this.centerCrop(resized) : resized;
    const { width, height } = cropped;
    const n = width * height;
    const rescaled = new Float32Array(n * 3);
    // transformers.rescale: image.astype(float64) * scale, then astype(float32)
    if (c.do_rescale) for (let i = 0; i < n * 3; i++) rescaled[i] = cropped.data[i]! * c.rescale_factor;
    else for (let i = 0; i < n * 3; i++) rescaled[i] = cropped.data[i]!;
    // transformers.normalize on float32: mean/std cast to float32, (x - mean) / std with float32 rounding per op
    const mean = c.image_mean.map(Math.fround);
    const std = c.image_std.map(Math.fround);
    const pixelValues = new Float32Array(n * 3);
    for (let ch = 0; ch < 3; ch++) {
      const m = mean[ch]!, s = std[ch]!, o = ch * n;
      for (let i = 0; i < n; i++) {
        const x = rescaled[i * 3 + ch]!;
        pixelValues[o + i] = c.do_normalize ? Math.fround(x - m) / s : x;
      }
    }
    return { resized, cropped, rescaled, pixelValues, height, width };
  }

  /** `CLIPImageProcessor(images=..., return_tensors='pt').pixel_values`: [B, 3, H, W] float32. */
  preprocess(images: RGBImage | readonly RGBImage[]): Tensor {
    const list = Array.isArray(images) ? (images as readonly RGBImage[]) : [images as RGBImage];
    if (list.length === 0) throw new InputError('CLIPImageProcessor: no images given');
    const stages = list.map((im) => this.stages(im));
    const { height, width } = stages[0]!;
    for (const [i, s] of stages.entries()) {
      if (s.height !== height || s.width !== width) {
        throw new InputError(`CLIPImageProcessor: image ${i} comes out ${s.width}x${s.height} but image 0 is ${width}x${height}; enable center crop or use images of one size`);
      }
    }
    const per = 3 * height * width;
    const data = new Float32Array(list.length * per);
    stages.forEach((s, i) => data.set(s.pixelValues, i * per));
    return { shape: [list.length, 3, height, width], data };
  }
}
