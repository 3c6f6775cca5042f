/** Test fixtures built from the tiny models' folders: whole components in memory, composed checkpoints. */
import path from 'node:path';
import { Checkpoint, type ComponentName, type ComponentSource } from '../src/components/checkpoint.js';
import { CLIPTokenizer } from '../src/io/clip-tokenizer.js';
import { Config } from '../src/io/config.js';
import { openComponentWeights } from '../src/io/weights.js';
import type { Tensor } from '../src/tensor.js';
import { modelDir } from './helpers.js';

/** Every tensor of one component folder, by name. */
export function readComponent(dir: string): Record<string, Tensor> {
  const src = openComponentWeights(dir);
  return Object.fromEntries([...src.keys()].map((k) => [k, src.read(k)]));
}

/** One component of a tiny model folder as a checkpoint source. */
export const folderSource = (m: string, c: string): ComponentSource => ({ config: () => Config.read(path.join(modelDir(m), c, 'config.json')), weights: () => openComponentWeights(path.join(modelDir(m), c)) });

/** tiny-sdxl with tiny-sd15's CLIP image encoder (tiny-sdxl has none): what VCF's fuse needs. */
export function tinySdxlWithImageEncoder(): Checkpoint {
  const M = 'tiny-sdxl';
  const sources: Partial<Record<ComponentName, ComponentSource>> = {
    unet: folderSource(M, 'unet'), vae: folderSource(M, 'vae'), text_encoder: folderSource(M, 'text_encoder'), text_encoder_2: folderSource(M, 'text_encoder_2'),
    image_encoder: folderSource('tiny-sd15', 'image_encoder'),
  };
  const scheduler = Config.read(path.join(modelDir(M), 'scheduler', 'scheduler_config.json')).raw;
  return Checkpoint.fromSources('tiny-sdxl+image-encoder', sources, scheduler, () => CLIPTokenizer.fromDir(path.join(modelDir(M), 'tokenizer')),
    { tokenizer2: () => CLIPTokenizer.fromDir(path.join(modelDir(M), 'tokenizer_2')), forceZerosForEmptyPrompt: true });
}
