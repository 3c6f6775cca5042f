/** The VAE of a checkpoint: images in [-1, 1] <-> latents (scaled by scaling_factor here, as pipelines do). */
import { Graph } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { compile } from '../graph/session.js';
import { precisionKey, usePrecision, type Precision } from '../graph/quantize.js';
import type { WeightsView } from '../io/weights.js';
import { vaeDecode, vaeEncode, vaeScaleFactor, type AutoencoderKLConfig } from '../models/autoencoder-kl.js';
import type { Tensor } from '../tensor.js';
import { scaleLatents } from './latent-scaling.js';

export class VAE {
  /** `precision` int8: the encoder's linear layers and convolutions quantized (graph/quantize.ts); the decoder stays float32. */
  constructor(readonly config: AutoencoderKLConfig, readonly weights: WeightsView, readonly id: string, readonly precision: Precision = 'fp32') {}

  get scaleFactor(): number { return vaeScaleFactor(this.config); }

  /** Latent distribution of images [B, 3, H, W] in [-1, 1]: unscaled mean and clamped logvar. */
  async encode(image: Tensor): Promise<{ mean: Tensor; logvar: Tensor }> {
    const session = await compile(`vae-enc:${this.id}:${image.shape.join('x')}${precisionKey(this.precision)}`, () => {
      const g = usePrecision(new Graph('vae_encoder'), this.precision);
      const enc = vaeEncode(g.input('image', image.shape), this.weights, this.config);
      g.output('mean', enc.mean);
      g.output('logvar', enc.logvar);
      return g;
    });
    const r = await session.run({ image });
    return { mean: r.mean!, logvar: r.logvar! };
  }

  /** `z_0 = (mean - shift_factor) * scaling_factor` as SD pipelines and inversion recipes take it. */
  async encodeToLatents(image: Tensor): Promise<Tensor> {
    const { mean } = await this.encode(image);
    return scaleLatents(mean, this.config.scalingFactor, this.config.shiftFactor);
  }

  /**
   * Decode latents as the pipeline holds them (divides by scaling_factor first), images in [-1, 1] (unclamped).
   * Always float32: in int8 the SD 1.5 decoder took 0.82x the time for a 6.8% relative error (notes/int8.md).
   */
  async decode(latents: Tensor): Promise<Tensor> {
    const session = await compile(`vae-dec:${this.id}:${latents.shape.join('x')}`, () => {
      const g = new Graph('vae_decoder');
      const z = g.input('latents', latents.shape);
      let scaled = op.div(z, this.config.scalingFactor);
      if (this.config.shiftFactor) scaled = op.add(scaled, this.config.shiftFactor);
      g.output('image', vaeDecode(scaled, this.weights, this.config));
      return g;
    });
    return (await session.run({ latents })).image!;
  }
}
