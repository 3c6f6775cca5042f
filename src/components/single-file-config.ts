/**
 * A single-file checkpoint (safetensors or torch pickle, original SD layout) paired with a diffusers
 * folder's configs, as diffusers' `from_single_file(file, config=DIR)`: the unet / vae / text_encoder
 * configs, the scheduler config and the tokenizer come from DIR; the weights come from the file. This
 * is how models whose architecture the weights cannot decide (head counts of non-standard sizes,
 * prediction type, VAE scaling factor) are opened exactly. Components the file lacks but DIR has
 * (image_encoder) are taken whole from DIR. SDXL files (text_encoder_2) take tokenizer_2 from DIR as well.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { CLIPTokenizer } from '../io/clip-tokenizer.js';
import { Config } from '../io/config.js';
import { openOriginalCheckpoint, type OriginalCheckpointOptions, type OriginalComponent } from '../io/original-checkpoint.js';
import { openComponentWeights } from '../io/weights.js';
import { Checkpoint, type CheckpointFamilyOptions, type ComponentName, type ComponentSource } from './checkpoint.js';

export function openSingleFileWithConfig(file: string, configDir: string, opts: OriginalCheckpointOptions = {}): Checkpoint {
  if (!fs.existsSync(configDir) || !fs.statSync(configDir).isDirectory()) {
    throw new InputError(`--config must be a diffusers model folder (with unet/config.json, ...), got ${configDir}`);
  }
  const ck = openOriginalCheckpoint(file, opts);
  const sources: Partial<Record<ComponentName, ComponentSource>> = {};
  const parts: [ComponentName, OriginalComponent | undefined][] = [['unet', ck.unet], ['vae', ck.vae], ['text_encoder', ck.text_encoder], ['text_encoder_2', ck.text_encoder_2]];
  for (const [name, part] of parts) {
    if (!part) continue;
    const cfg = path.join(configDir, name, 'config.json');
    if (!fs.existsSync(cfg)) {
      ck.close();
      throw new FileFormatError(path.join(configDir, name), `the --config folder has no ${name}/config.json, but ${path.basename(file)} holds a ${name}`);
    }
    sources[name] = { config: () => Config.read(cfg), weights: () => part.weights() };
  }
  const encoder = path.join(configDir, 'image_encoder');
  if (fs.existsSync(path.join(encoder, 'config.json'))) {
    sources.image_encoder = { config: () => Config.read(path.join(encoder, 'config.json')), weights: () => openComponentWeights(encoder) };
  }
  const schedulerFile = path.join(configDir, 'scheduler', 'scheduler_config.json');
  const folderScheduler = fs.existsSync(schedulerFile) ? Config.read(schedulerFile).raw : ck.scheduler.raw;
  // An explicit prediction type wins over the folder's, as diffusers' from_single_file(config=, prediction_type=).
  const scheduler = opts.predictionType !== undefined ? { ...folderScheduler, prediction_type: opts.predictionType } : folderScheduler;
  const tokenizerDir = path.join(configDir, 'tokenizer');
  const padToken = ck.version === 2 ? '!' : '<|endoftext|>';
  const tokenizer = fs.existsSync(tokenizerDir) ? (): CLIPTokenizer => CLIPTokenizer.fromDir(tokenizerDir) : (): CLIPTokenizer => CLIPTokenizer.bundled({ padToken });
  // SDXL: the second tokenizer and model_index.json's force_zeros_for_empty_prompt (diffusers' default: true).
  let family: CheckpointFamilyOptions = {};
  if (ck.text_encoder_2) {
    const tokenizer2Dir = path.join(configDir, 'tokenizer_2');
    const index = path.join(configDir, 'model_index.json');
    const forceZeros = fs.existsSync(index) ? Config.read(index).raw.force_zeros_for_empty_prompt : undefined;
    family = {
      tokenizer2: fs.existsSync(tokenizer2Dir) ? (): CLIPTokenizer => CLIPTokenizer.fromDir(tokenizer2Dir) : (): CLIPTokenizer => CLIPTokenizer.bundled({ padToken: '!' }),
      forceZerosForEmptyPrompt: forceZeros !== false,
    };
  }
  // The inference warnings (guessed head counts, prediction type) do not apply: the configs decide.
  return Checkpoint.fromSources(file, sources, scheduler, tokenizer, family);
}
