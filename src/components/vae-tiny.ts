/**
 * The tiny VAE (TAESD, diffusers AutoencoderTiny) as a drop-in for a checkpoint's VAE: same latent
 * space, a fraction of the cost. Opened from a folder with config.json and safetensors weights
 * (e.g. madebyollin/taesd for SD 1.x/2.x, madebyollin/taesdxl for SDXL).
 */
import fs from 'node:fs';
import path from 'node:path';
import { InputError } from '../errors.js';
import { Graph } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { compile } from '../graph/session.js';
import { Config } from '../io/config.js';
import { openComponentWeights, WeightsView } from '../io/weights.js';
import { autoencoderTinyConfig, dequantizeLatents, quantizeLatents, tinyDecode, tinyEncode, tinyVaeScaleFactor, type AutoencoderTinyConfig } from '../models/autoencoder-tiny.js';
import type { Tensor } from '../tensor.js';
import { scaleLatents } from './latent-scaling.js';
import type { LatentAutoencoder } from './latent-autoencoder.js';
import type { Checkpoint } from './checkpoint.js';

export class TinyVAE implements LatentAutoencoder {
  constructor(readonly config: AutoencoderTinyConfig, readonly weights: WeightsView, readonly id: string) {}

  /** A TAESD folder (config.json + weights), or a diffusers model folder whose vae/ is an AutoencoderTiny. */
  static open(dir: string, flag = '--vae-tiny'): TinyVAE {
    if (!fs.existsSync(dir) || !fs.statSync(dir).isDirectory()) throw new InputError(`${flag}: ${dir} is not a folder (expected a TAESD folder with config.json and weights)`);
    const folder = !fs.existsSync(path.join(dir, 'config.json')) && fs.existsSync(path.join(dir, 'vae', 'config.json')) ? path.join(dir, 'vae') : dir;
    if (!fs.existsSync(path.join(folder, 'config.json'))) throw new InputError(`${flag}: ${dir} has no config.json (expected a diffusers AutoencoderTiny folder)`);
    const cfg = autoencoderTinyConfig(Config.read(path.join(folder, 'config.json')));
    return new TinyVAE(cfg, new WeightsView(openComponentWeights(folder)), `${path.resolve(folder)}#vae_tiny`);
  }

  get scaleFactor(): number { return tinyVaeScaleFactor(this.config); }
  get latentChannels(): number { return this.config.latentChannels; }

  /** `vae.encode(image).latents`: images [B, 3, H, W] in [-1, 1] to unscaled latents. */
  async encode(image: Tensor): Promise<Tensor> {
    const session = await compile(`taesd-enc:${this.id}:${image.shape.join('x')}`, () => {
      const g = new Graph('taesd_encoder');
      g.output('latents', tinyEncode(g.input('image', image.shape), this.weights, this.config));
      return g;
    });
    return (await session.run({ image })).latents!;
  }

  /** `(latents - shift_factor) * scaling_factor`, as pipelines take an image into the UNet's space. */
  async encodeToLatents(image: Tensor): Promise<Tensor> {
    return scaleLatents(await this.encode(image), this.config.scalingFactor, this.config.shiftFactor);
  }

  /** `vae.decode(latents / scaling_factor)`: images in [-1, 1] (unclamped). */
  async decode(latents: Tensor): Promise<Tensor> {
    const session = await compile(`taesd-dec:${this.id}:${latents.shape.join('x')}`, () => {
      const g = new Graph('taesd_decoder');
      let z = op.div(g.input('latents', latents.shape), this.config.scalingFactor);
      if (this.config.shiftFactor) z = op.add(z, this.config.shiftFactor);
      g.output('image', tinyDecode(z, this.weights, this.config));
      return g;
    });
    return (await session.run({ latents })).image!;
  }

  /** `vae(image).sample`: encode, store the latents as 8 bits (TAESD's latent images), decode those. */
  async forward(image: Tensor): Promise<{ quantizedLatents: Uint8Array; sample: Tensor }> {
    const z = await this.encode(image);
    const q = quantizeLatents(z.data, this.config);
    const session = await compile(`taesd-dec-raw:${this.id}:${z.shape.join('x')}`, () => {
      const g = new Graph('taesd_decoder');
      g.output('image', tinyDecode(g.input('latents', z.shape), this.weights, this.config));
      return g;
    });
    const sample = (await session.run({ latents: { shape: z.shape, data: dequantizeLatents(q, this.config) } })).image!;
    return { quantizedLatents: q, sample };
  }
}

/**
 * Open the tiny VAE in `dir` and make the checkpoint encode and decode with it, after checking that
 * it shares the model's latent space (downsampling factor and latent channels of the model's VAE).
 */
export function useTinyVae(ck: Checkpoint, dir: string, flag = '--vae-tiny'): TinyVAE {
  const tiny = TinyVAE.open(dir, flag);
  if (ck.isPixelSpace()) throw new InputError(`${flag}: ${ck.path} is a pixel-space model (no latents to decode)`);
  if (ck.has('vae')) {
    const vae = ck.vae();
    if (tiny.scaleFactor !== vae.scaleFactor) throw new InputError(`${flag}: ${dir} downsamples by ${tiny.scaleFactor} but the model's VAE by ${vae.scaleFactor} (use the tiny VAE made for this model family)`);
    if (tiny.latentChannels !== vae.config.latentChannels) throw new InputError(`${flag}: ${dir} has ${tiny.latentChannels} latent channels but the model's VAE ${vae.config.latentChannels}`);
  }
  ck.useAutoencoder(tiny);
  return tiny;
}
