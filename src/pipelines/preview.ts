/**
 * Live previews while denoising: every N steps the step's x0 prediction (the clean latents the
 * scheduler currently aims at) is decoded cheaply and reported as a progress event carrying the
 * images. x0 rather than the current latents x_t, as diffusers-based UIs do: x_t is mostly noise
 * for most of the run, x0 shows the picture that is forming.
 */
import type { Checkpoint } from '../components/checkpoint.js';
import type { LatentAutoencoder } from '../components/latent-autoencoder.js';
import { InputError } from '../errors.js';
import type { RGBImage } from '../io/image.js';
import { numpyToPil, roundHalfEven, VaeImageProcessor } from '../io/vae-image-processor.js';
import { hasNonFinite, rows, type Tensor } from '../tensor.js';
import { samplesToImages } from './common.js';
import type { PreviewImages, RunControl } from './progress.js';

export interface PreviewOptions {
  /** Decode a preview after every N denoising steps. */
  every: number;
  /**
   * The decoder for previews, normally the tiny VAE (TAESD); without one, a linear latent-to-RGB map
   * at latent resolution (4-channel SD 1.x/2.x and SDXL latents only).
   */
  decoder?: LatentAutoencoder;
}

/** Called after each denoising step: `step` done of `total`, the step's x0 prediction when the scheduler gives one. */
export type PreviewHook = (step: number, total: number, x0: Tensor | undefined, latents: Tensor) => Promise<void>;

/**
 * Linear fits of the VAE decoder, RGB = z^T F (+ bias), on the scaled latents: the widely published
 * factors of ComfyUI's latent previews (SD 1.x/2.x; SDXL with a bias). Output roughly in [-1, 1].
 */
const LATENT_RGB = {
  sd: { factors: [[0.3512, 0.2297, 0.3227], [0.3250, 0.4974, 0.2350], [-0.2829, 0.1762, 0.2721], [-0.2120, -0.2616, -0.7177]], bias: [0, 0, 0] },
  sdxl: { factors: [[0.3920, 0.4054, 0.4549], [-0.2634, -0.0196, 0.0653], [0.0568, 0.1687, -0.0755], [-0.3112, -0.2359, -0.2076]], bias: [0.1084, -0.0175, -0.0011] },
} as const;

/** The SDXL VAE's scaling factor tells its latent space apart from SD 1.x/2.x's (0.18215). */
const SDXL_SCALING_FACTOR = 0.13025;

/** Latents [B, 4, h, w] to RGB images of h x w with a linear map. */
export function latentsToRgbApprox(latents: Tensor, family: keyof typeof LATENT_RGB): RGBImage[] {
  const [b, c, h, w] = latents.shape as [number, number, number, number];
  if (latents.shape.length !== 4 || c !== 4) throw new InputError(`latent-to-RGB previews need 4-channel latents, got [${latents.shape.join(', ')}] (give --vae-tiny)`);
  const { factors, bias } = LATENT_RGB[family];
  const n = h * w;
  const out: RGBImage[] = [];
  for (let bi = 0; bi < b; bi++) {
    const data = new Uint8Array(n * 3);
    const base = bi * c * n;
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < 3; ch++) {
        let v = bias[ch]!;
        for (let k = 0; k < 4; k++) v += latents.data[base + k * n + i]! * factors[k]![ch]!;
        v = (v + 1) / 2;
        data[i * 3 + ch] = Number.isFinite(v) ? roundHalfEven((v < 0 ? 0 : v > 1 ? 1 : v) * 255) : 0;
      }
    }
    out.push({ width: w, height: h, data });
  }
  return out;
}

/** Decode each row with the (tiny) autoencoder and postprocess as diffusers does. */
async function decodeRows(ae: LatentAutoencoder, latents: Tensor): Promise<RGBImage[] | undefined> {
  const proc = new VaeImageProcessor({ vae_scale_factor: ae.scaleFactor });
  const images: RGBImage[] = [];
  for (let i = 0; i < latents.shape[0]!; i++) {
    const x = await ae.decode(rows(latents, i));
    if (hasNonFinite(x)) return undefined; // a preview is best-effort; the final decode still checks
    images.push(...numpyToPil(proc.postprocessNp(x)));
  }
  return images;
}

/** The per-step preview hook of a run, or undefined when it asks for none (or nobody listens). */
export function previewHook(ck: Checkpoint, o: RunControl & { preview?: PreviewOptions }): PreviewHook | undefined {
  const p = o.preview;
  if (!p) return undefined;
  if (!Number.isInteger(p.every) || p.every < 1) throw new InputError(`--preview-every must be an integer >= 1, got ${p.every}`);
  const pixel = ck.isPixelSpace();
  let family: keyof typeof LATENT_RGB = 'sd';
  if (!pixel && !p.decoder) {
    const channels = ck.unet().inChannels;
    if (channels !== 4) throw new InputError(`--preview-every without --vae-tiny needs 4-channel latents; this UNet takes ${channels} channels`);
    if (ck.has('vae') && Math.abs(ck.vae().config.scalingFactor - SDXL_SCALING_FACTOR) < 1e-6) family = 'sdxl';
  }
  if (!o.onProgress) return undefined;
  return async (step, total, x0, latents) => {
    if (step % p.every !== 0) return;
    const source = x0 ? 'x0' : 'latents';
    const z = x0 ?? latents;
    let images: RGBImage[] | undefined;
    let decoder: PreviewImages['decoder'];
    if (pixel) { decoder = 'pixels'; images = hasNonFinite(z) ? undefined : samplesToImages(z); }
    else if (p.decoder) { decoder = 'tiny-vae'; images = await decodeRows(p.decoder, z); }
    else { decoder = 'latent-rgb'; images = latentsToRgbApprox(z, family); }
    if (!images) return;
    o.signal?.throwIfAborted();
    o.onProgress?.({ stage: 'denoise', step, total, preview: { step, images, source, decoder } });
  };
}
