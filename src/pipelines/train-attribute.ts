/**
 * Training an Asyrp attribute network (DeltaBlock) from a folder of images and a source/target text
 * pair. Each image is DDIM-inverted once (its chain is reused); every iteration visits each image at a
 * random timestep of the editing interval t >= t_edit and takes an Adam step on
 * L = L_dir + 3 L_1 (asyrp-training.ts). The edit direction in CLIP space is the text direction
 * E_T(target) - E_T(source); with a visual reference (seed 002: generated from the target text, or a
 * file) it is the fused direction normalize(d_text) + normalize(E_I(reference) - mean E_I(images)).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { Checkpoint } from '../components/checkpoint.js';
import type { CLIPModel } from '../components/clip-model.js';
import { InputError } from '../errors.js';
import { Graph } from '../graph/ir.js';
import { compile } from '../graph/session.js';
import { readImageRGB, type RGBImage } from '../io/image.js';
import { writeSafetensors } from '../io/safetensors.js';
import { VaeImageProcessor } from '../io/vae-image-processor.js';
import { asyrpLossAndGrads, type DeltaParams } from '../methods/asyrp-training.js';
import { clipPixels, towerOfCLIPModel } from '../methods/clip-guidance.js';
import { DELTA_PARAMS, deltaBlockGroups, deltaParamShapes, type DeltaBlockConfig } from '../methods/delta-block.js';
import { NativeGaussian } from '../noise/gaussian.js';
import { Adam } from '../training/optimizers.js';
import type { Tensor } from '../tensor.js';
import { checkTimestep } from './inject.js';
import { referenceAtSize } from './common.js';
import { invert } from './invert.js';
import { report, type RunControl } from './progress.js';
import { textToImage } from './text-to-image.js';

export interface TrainAttributeOptions extends RunControl {
  images: string;
  source: string;
  target: string;
  clip: CLIPModel;
  out: string;
  iterations?: number;
  lr?: number;
  tEdit?: number;
  /** DDIM steps of the inversion (the editing interval's timesteps come from it). */
  steps?: number;
  /** 'generate': a reference image generated from the target text; or an image file. */
  visualReference?: 'generate' | string;
  seed?: number;
  onLoss?: (iteration: number, loss: number) => void;
  onWarning?: (m: string) => void;
}

const IMAGE_EXT = /\.(png|jpe?g|webp|gif|tiff?|avif)$/i;

function unit(v: Float32Array): Float32Array {
  const n = Math.sqrt(v.reduce((s, x) => s + x * x, 0));
  return v.map((x) => x / n);
}

/** PyTorch's default init (U(+-1/sqrt(fan_in)) for convs/linear, GroupNorm ones/zeros). */
export function initialDeltaBlock(cfg: DeltaBlockConfig, seed: number): DeltaParams {
  const rng = new NativeGaussian(seed);
  const shapes = deltaParamShapes(cfg);
  const u = (shape: number[], fanIn: number): Tensor => ({ shape, data: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => (2 * (rng.nextUint32() / 2 ** 32) - 1) / Math.sqrt(fanIn)) });
  return {
    'conv_in.weight': u(shapes['conv_in.weight'], cfg.channels), 'conv_in.bias': u(shapes['conv_in.bias'], cfg.channels),
    'temb_proj.weight': u(shapes['temb_proj.weight'], cfg.tembChannels), 'temb_proj.bias': u(shapes['temb_proj.bias'], cfg.tembChannels),
    'norm.weight': { shape: [cfg.channels], data: new Float32Array(cfg.channels).fill(1) }, 'norm.bias': { shape: [cfg.channels], data: new Float32Array(cfg.channels) },
    'conv_out.weight': u(shapes['conv_out.weight'], cfg.channels), 'conv_out.bias': u(shapes['conv_out.bias'], cfg.channels),
  };
}

export async function trainAttribute(ck: Checkpoint, o: TrainAttributeOptions): Promise<{ losses: number[]; images: number }> {
  const iterations = o.iterations ?? 40, lr = o.lr ?? 0.5, steps = o.steps ?? 40;
  const tEdit = checkTimestep('--t-edit', o.tEdit ?? 500);
  if (!fs.existsSync(o.images) || !fs.statSync(o.images).isDirectory()) throw new InputError(`--images must be a folder of images: ${o.images}`);
  const files = fs.readdirSync(o.images).filter((f) => IMAGE_EXT.test(f)).sort();
  if (files.length === 0) throw new InputError(`--images folder ${o.images} holds no images`);
  const unet = ck.unet();
  const ch = unet.arch.unet.blockOutChannels;
  const cfg: DeltaBlockConfig = { channels: ch[ch.length - 1]!, tembChannels: ch[0]! * 4, groups: deltaBlockGroups(ch[ch.length - 1]!), eps: 1e-6 };
  const factor = ck.isPixelSpace() ? 1 : ck.vae().scaleFactor;
  const tower = towerOfCLIPModel(o.clip);

  // CLIP direction: text, optionally fused with a visual reference.
  const et = await o.clip.textFeatures([o.source, o.target]);
  const d = et.data.length / 2;
  let direction = Float32Array.from({ length: d }, (_, i) => et.data[d + i]! - et.data[i]!);
  const images: RGBImage[] = [];
  for (const f of files) images.push(referenceAtSize(await readImageRGB(path.join(o.images, f)), factor, undefined, undefined, o.onWarning));
  if (o.visualReference) {
    const ref = o.visualReference === 'generate'
      ? (await textToImage(ck, { scheduler: 'ddim', prompt: o.target, steps, guidance: 7.5, width: images[0]!.width, height: images[0]!.height, noise: new NativeGaussian(o.seed ?? 0) })).images[0]!
      : await readImageRGB(o.visualReference);
    const feats = async (im: RGBImage): Promise<Float32Array> => {
      const x = new VaeImageProcessor({ vae_scale_factor: 1, do_resize: false }).preprocess(im);
      const s = await compile(`clip-of-image:${tower.id}:${x.shape.join('x')}`, () => { const g = new Graph(); g.output('f', tower.features(clipPixels(g.input('x', x.shape), tower))); return g; });
      return (await s.run({ x })).f!.data;
    };
    const refF = await feats(ref);
    const mean = new Float32Array(refF.length);
    for (const im of images) { const f = await feats(im); for (let i = 0; i < mean.length; i++) mean[i] = mean[i]! + f[i]! / images.length; }
    const dv = unit(refF.map((v, i) => v - mean[i]!)), dt = unit(direction);
    direction = dt.map((v, i) => v + dv[i]!);
  }
  const dirTensor: Tensor = { shape: [1, d], data: direction };

  // Inversions, once per image.
  const chains = [];
  for (const [i, im] of images.entries()) {
    report(o, 'invert', i, images.length);
    chains.push(await invert(ck, im, { prompt: unet.conditional ? o.source : '', steps }));
  }
  report(o, 'invert', images.length, images.length);

  const params = initialDeltaBlock(cfg, o.seed ?? 0);
  const adam = new Adam({ lr });
  const rng = new NativeGaussian((o.seed ?? 0) + 7);
  const losses: number[] = [];
  for (let it = 0; it < iterations; it++) {
    report(o, 'train', it, iterations, losses.length ? `loss ${losses[losses.length - 1]!.toFixed(4)}` : undefined);
    let sum = 0;
    for (const inv of chains) {
      // The chain's k-th latent is x at timestep timesteps[k-1] (inversion steps end there).
      const editable = inv.timesteps.map((t, k) => ({ t, k: k + 1 })).filter((e) => e.t >= tEdit);
      if (editable.length === 0) throw new InputError(`no inversion timestep is >= --t-edit ${tEdit}`);
      const pick = editable[Math.floor((rng.nextUint32() / 2 ** 32) * editable.length)]!;
      const r = await asyrpLossAndGrads(ck, tower, cfg, params, { xt: inv.chain[pick.k]!, timestep: pick.t, context: inv.promptEmbeds, direction: dirTensor });
      if (!Number.isFinite(r.loss)) throw new InputError(`the loss became ${r.loss}; lower --lr`);
      adam.step(params, r.grads);
      sum += r.loss;
    }
    losses.push(sum / chains.length);
    o.onLoss?.(it + 1, sum / chains.length);
  }
  report(o, 'train', iterations, iterations, `loss ${losses[losses.length - 1]?.toFixed(4)}`);
  writeSafetensors(o.out, Object.fromEntries(DELTA_PARAMS.map((n) => [n, params[n]])), {
    format: 'visprompt-asyrp-deltablock', model: ck.path, source: o.source, target: o.target, t_edit: String(tEdit), channels: String(cfg.channels), temb_channels: String(cfg.tembChannels),
  });
  return { losses, images: images.length };
}
