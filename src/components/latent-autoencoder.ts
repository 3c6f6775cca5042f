/** What pipelines need of an autoencoder between images in [-1, 1] and the UNet's latent space. */
import type { Tensor } from '../tensor.js';

export interface LatentAutoencoder {
  /** Image pixels per latent pixel along each axis. */
  readonly scaleFactor: number;
  /** Images [B, 3, H, W] in [-1, 1] to latents as the UNet sees them (scaled by scaling_factor). */
  encodeToLatents(image: Tensor): Promise<Tensor>;
  /** Latents as the pipeline holds them (the autoencoder divides by scaling_factor) to images in [-1, 1], unclamped. */
  decode(latents: Tensor): Promise<Tensor>;
}
