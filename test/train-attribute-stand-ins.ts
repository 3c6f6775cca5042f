/**
 * Stand-ins shared by the Asyrp attribute-training tests (train-attribute-loop, train-attribute-pieces): a pixel-space
 * checkpoint whose UNet call is a known function (optionally carrying tiny-ddpm's weights for the objective), a CLIP
 * model whose text features are a known function of the text (optionally tiny-clip's image tower), PyTorch's default
 * DeltaBlock init written out, and folders of small PNGs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint, type Checkpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { writePNG, type RGBImage } from '../src/io/image.js';
import { NativeGaussian } from '../src/noise/gaussian.js';
import type { Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';

export const SD = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };

/** Params in the DeltaBlock order with PyTorch's default init by hand: U(+-1/sqrt(fan_in)), fan_in = channels except temb_proj's. */
export function initByHand(c: number, temb: number, seed: number): Record<string, number[]> {
  const rng = new NativeGaussian(seed);
  const u = (n: number, fanIn: number) => Array.from({ length: n }, () => Math.fround((2 * (rng.nextUint32() / 2 ** 32) - 1) / Math.sqrt(fanIn)));
  const convIn = u(c * c, c), convInB = u(c, c), tembW = u(c * temb, temb), tembB = u(c, temb);
  const convOut = u(c * c, c), convOutB = u(c, c);
  return { 'conv_in.weight': convIn, 'conv_in.bias': convInB, 'temb_proj.weight': tembW, 'temb_proj.bias': tembB, 'norm.weight': new Array(c).fill(1), 'norm.bias': new Array(c).fill(0), 'conv_out.weight': convOut, 'conv_out.bias': convOutB };
}

// Stand-in pixel model: eps = 0.1 x + 0.02 (inversion / sampling); the weights and arch of tiny-ddpm (for the objective).
let realUnet: ReturnType<Checkpoint['unet']> | undefined;
export function ck(calls: number[] = [], withWeights = false): Checkpoint {
  const real = withWeights ? (realUnet ??= openCheckpoint(modelDir('tiny-ddpm')).unet()) : undefined;
  const unet = {
    conditional: false, inChannels: 3, sampleSize: 8, embedsGuidance: false, guidanceCond: () => undefined, config: { addition: null }, arch: real?.arch ?? { kind: 'unconditional', unet: { blockOutChannels: [32, 64, 64] } }, weights: real?.weights,
    async run(a: { sample: Tensor; timestep: number }) { calls.push(a.timestep); return { noisePred: { shape: a.sample.shape, data: a.sample.data.map((v) => 0.1 * v + 0.02) }, extra: {} }; },
  };
  return { path: 'tattr-stand-in', unet: () => unet, isPixelSpace: () => true, schedulerConfig: () => ({ raw: SD, file: 'scheduler_config.json' }), release: async () => {} } as unknown as Checkpoint;
}

let clipModel: CLIPModel | undefined;
export const TEXT_DIM = 32;
export const textFeat = (s: string): number[] => Array.from({ length: TEXT_DIM }, (_, i) => Math.fround(Math.sin(s.length * 0.3 + i * 0.7)));
/** tiny-clip's weights and image tower; text features a known function of the text. */
export function clip(texts: string[][] = [], real = false): CLIPModel {
  const m = real ? (clipModel ??= CLIPModel.open(modelDir('tiny-clip'))) : undefined;
  return { id: m?.id ?? 'no-clip', config: m?.config ?? { vision: { imageSize: 30 } }, weights: m?.weights, async textFeatures(t: string[]) { texts.push(t); return { shape: [t.length, TEXT_DIM], data: Float32Array.from(t.flatMap(textFeat)) }; } } as unknown as CLIPModel;
}

/** A folder `root/name` of size x size PNGs (a seeded pattern each) and, for names not ending in .png, text files. */
export async function imageFolder(root: string, name: string, files: [string, number][], size = 8): Promise<string> {
  const dir = path.join(root, name);
  fs.mkdirSync(dir);
  for (const [f, seed] of files) {
    if (!/\.png$/i.test(f)) { fs.writeFileSync(path.join(dir, f), 'not an image'); continue; }
    await writePNG(path.join(dir, f), { width: size, height: size, data: Uint8Array.from({ length: size * size * 3 }, (_, i) => (i * 31 + seed * 57) % 256) } as RGBImage);
  }
  return dir;
}
