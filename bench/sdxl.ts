/**
 * A full-size SDXL diffusers folder of random weights (stable-diffusion-xl-base-1.0's configs: the 2.6 B
 * UNet, CLIP ViT-L and OpenCLIP ViT-bigG text encoders, the 0.13025-scaled VAE), streamed to disk tensor by
 * tensor like the SD 1.5 folder; tokenizers and scheduler config come from the tiny SDXL fixture (same files
 * as the published model).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Config, type Json } from '../src/io/config.js';
import { autoencoderConfig } from '../src/models/autoencoder-kl.js';
import { clipTextConfig } from '../src/models/clip.js';
import { unetConfig } from '../src/models/unet2d-condition.js';
import { numel } from '../src/tensor.js';
import { TINY_MODELS } from './harness.js';
import { clipTextWeightTable, unetWeightTable, vaeWeightTable, writeRandomSafetensors, type WeightTable } from './random-weights.js';
import { SD15_TEXT, SD15_VAE, SDXL_UNET } from './sd15.js';

/** text_encoder_2/config.json of SDXL base (OpenCLIP ViT-bigG/14 text tower with its projection). */
export const SDXL_TEXT_2: Record<string, Json> = {
  architectures: ['CLIPTextModelWithProjection'],
  hidden_act: 'gelu',
  hidden_size: 1280,
  intermediate_size: 5120,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  num_attention_heads: 20,
  num_hidden_layers: 32,
  vocab_size: 49408,
  bos_token_id: 0,
  eos_token_id: 2,
  pad_token_id: 1,
  projection_dim: 1280,
};

/** vae/config.json of SDXL base: SD 1.5's architecture, scaling factor 0.13025, float32 upcast. */
export const SDXL_VAE: Record<string, Json> = { ...SD15_VAE, sample_size: 1024, scaling_factor: 0.13025, force_upcast: true };

/** The weight tables of the SDXL folder (file -> table); text_encoder_2 adds its bias-free projection. */
export function sdxlWeightTables(): [string, WeightTable][] {
  const text2Cfg = clipTextConfig(new Config('SDXL text_encoder_2/config.json (bench)', SDXL_TEXT_2));
  const text2 = clipTextWeightTable(text2Cfg);
  const d = text2Cfg.hiddenSize;
  text2.set('text_projection.weight', { shape: [text2Cfg.projectionDim ?? d, d], init: { kind: 'uniform', bound: 1 / Math.sqrt(d) } });
  return [
    ['unet/diffusion_pytorch_model.safetensors', unetWeightTable(unetConfig(new Config('SDXL unet/config.json (bench)', SDXL_UNET)))],
    ['vae/diffusion_pytorch_model.safetensors', vaeWeightTable(autoencoderConfig(new Config('SDXL vae/config.json (bench)', SDXL_VAE)))],
    ['text_encoder/model.safetensors', clipTextWeightTable(clipTextConfig(new Config('SDXL text_encoder/config.json (bench)', SD15_TEXT)))],
    ['text_encoder_2/model.safetensors', text2],
  ];
}

/** Writes the SDXL folder (F32 by default; `write` picks the writer); returns its bytes and parameter count. */
export function writeRandomSdxlCheckpoint(dir: string, write: (file: string, table: WeightTable) => number = writeRandomSafetensors): { bytes: number; parameters: number } {
  const json = (file: string, obj: unknown): void => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(obj, null, 2));
  };
  const tiny = path.join(TINY_MODELS, 'tiny-sdxl');
  for (const f of ['model_index.json', 'scheduler/scheduler_config.json']) {
    fs.mkdirSync(path.dirname(path.join(dir, f)), { recursive: true });
    fs.copyFileSync(path.join(tiny, f), path.join(dir, f));
  }
  for (const tok of ['tokenizer', 'tokenizer_2']) fs.cpSync(path.join(tiny, tok), path.join(dir, tok), { recursive: true });
  json(path.join(dir, 'unet/config.json'), SDXL_UNET);
  json(path.join(dir, 'vae/config.json'), SDXL_VAE);
  json(path.join(dir, 'text_encoder/config.json'), { ...SD15_TEXT, pad_token_id: 1 });
  json(path.join(dir, 'text_encoder_2/config.json'), SDXL_TEXT_2);
  let bytes = 0, parameters = 0;
  for (const [file, table] of sdxlWeightTables()) {
    bytes += write(path.join(dir, file), table);
    for (const s of table.values()) parameters += numel(s.shape);
  }
  return { bytes, parameters };
}
