/**
 * MasaCtrl's official real-image editing run (TencentARC/MasaCtrl playground_real.ipynb + MasaCtrlPipeline),
 * as vary settings: what kv-replace needs besides its attention rule to reproduce it.
 * - load_image: torchvision read_image (8-bit RGB), x / 127.5 - 1, F.interpolate to (height, width) with
 *   torch's default 'nearest' mode (not PIL, not antialiased);
 * - invert: DDIM inversion WITH classifier-free guidance on the source prompt ('' unconditional), by default
 *   at the sampling guidance (the notebook passes 7.5 to both);
 * - the source row is denoised from the inverted z_T with its own guidance (free running, not pinned to the
 *   inversion chain), in the batch [source, target] whose target row also starts from z_T;
 * - the scheduler: DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule='scaled_linear',
 *   clip_sample=False, set_alpha_to_one=False), whose steps_offset 0 StableDiffusionPipeline.__init__ rewrites
 *   to 1 (timesteps end at 1); 'leading' spacing. The model's prediction_type is kept.
 */
import type { RGBImage } from '../io/image.js';
import { torchNearestResize } from '../io/torch-nearest.js';
import type { Tensor } from '../tensor.js';
import type { OfficialRun } from './method.js';

export const MASACTRL_SCHEDULER = {
  num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', trained_betas: null,
  clip_sample: false, set_alpha_to_one: false, steps_offset: 1, thresholding: false, timestep_spacing: 'leading', rescale_betas_zero_snr: false,
} as const;

/** The notebook's load_image at (height, width): [1, 3, H, W] float32 in [-1, 1]. */
export function masactrlReferencePixels(image: RGBImage, width: number, height: number): Tensor {
  const im = torchNearestResize(image, width, height);
  const n = width * height;
  const data = new Float32Array(3 * n);
  for (let c = 0; c < 3; c++) for (let i = 0; i < n; i++) data[c * n + i] = Math.fround(Math.fround(im.data[i * 3 + c]! / 127.5) - 1);
  return { shape: [1, 3, height, width], data };
}

export const MASACTRL_RUN: OfficialRun = {
  schedulerConfig: MASACTRL_SCHEDULER,
  freeReference: true,
  referencePixels: masactrlReferencePixels,
  inversionGuidance: 'sampling',
};
