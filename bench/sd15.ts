/**
 * The full-size models of the benchmark: SD 1.5 (and SDXL UNet) configs as in the published checkpoints,
 * parsed by the project's own config readers, the UNet graph and feeds as src/components/unet.ts builds them,
 * the plain CFG step every *_ratio measure compares with, and an SD 1.5 diffusers folder of random weights.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ComponentSource } from '../src/components/checkpoint.js';
import type { UNetVariant } from '../src/components/unet.js';
import { usePrecision, type Precision } from '../src/graph/quantize.js';
import type { Feed } from '../src/graph/session.js';
import { Config, type Json } from '../src/io/config.js';
import { WeightsView } from '../src/io/weights.js';
import { autoencoderConfig, type AutoencoderKLConfig } from '../src/models/autoencoder-kl.js';
import { clipTextConfig, type CLIPTextConfig } from '../src/models/clip.js';
import { unet2DConditionModel, unetConfig, type UNet2DConditionConfig } from '../src/models/unet2d-condition.js';
import { numel } from '../src/tensor.js';
import { randomTensor, ROOT, ShapeGraph, type Arm } from './harness.js';
import { clipTextWeightTable, unetWeightTable, vaeWeightTable, writeRandomSafetensors, type RandomWeights, type WeightTable } from './random-weights.js';

// ---------------------------------------------------------------------------------------------
// SD 1.5 configs, as in runwayml/stable-diffusion-v1-5 (parsed by the project's own config readers).

export const SD15_UNET: Record<string, Json> = {
  _class_name: 'UNet2DConditionModel',
  act_fn: 'silu',
  attention_head_dim: 8,
  block_out_channels: [320, 640, 1280, 1280],
  center_input_sample: false,
  cross_attention_dim: 768,
  down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
  downsample_padding: 1,
  flip_sin_to_cos: true,
  freq_shift: 0,
  in_channels: 4,
  layers_per_block: 2,
  mid_block_scale_factor: 1,
  norm_eps: 1e-5,
  norm_num_groups: 32,
  out_channels: 4,
  sample_size: 64,
  up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'],
};

export const SD15_VAE: Record<string, Json> = {
  _class_name: 'AutoencoderKL',
  act_fn: 'silu',
  block_out_channels: [128, 256, 512, 512],
  down_block_types: ['DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D', 'DownEncoderBlock2D'],
  in_channels: 3,
  latent_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 3,
  sample_size: 512,
  up_block_types: ['UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D', 'UpDecoderBlock2D'],
};

export const SD15_TEXT: Record<string, Json> = {
  architectures: ['CLIPTextModel'],
  hidden_act: 'quick_gelu',
  hidden_size: 768,
  intermediate_size: 3072,
  layer_norm_eps: 1e-5,
  max_position_embeddings: 77,
  num_attention_heads: 12,
  num_hidden_layers: 12,
  vocab_size: 49408,
  bos_token_id: 0,
  eos_token_id: 2,
  projection_dim: 768,
};

/** unet/config.json of stable-diffusion-xl-base-1.0 (2.6 B parameters). */
export const SDXL_UNET: Record<string, Json> = {
  _class_name: 'UNet2DConditionModel',
  addition_embed_type: 'text_time',
  addition_time_embed_dim: 256,
  attention_head_dim: [5, 10, 20],
  block_out_channels: [320, 640, 1280],
  cross_attention_dim: 2048,
  down_block_types: ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'],
  in_channels: 4,
  layers_per_block: 2,
  norm_num_groups: 32,
  out_channels: 4,
  projection_class_embeddings_input_dim: 2816,
  sample_size: 128,
  transformer_layers_per_block: [1, 2, 10],
  up_block_types: ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D'],
  use_linear_projection: true,
};

/** diffusers' ControlNetModel config of the SD 1.5 ControlNets (lllyasviel/sd-controlnet-*): the UNet's encoder. */
export const SD15_CONTROLNET: Record<string, Json> = {
  ...Object.fromEntries(Object.entries(SD15_UNET).filter(([k]) => !['_class_name', 'out_channels', 'sample_size', 'up_block_types'].includes(k))),
  _class_name: 'ControlNetModel',
  conditioning_channels: 3,
  conditioning_embedding_out_channels: [16, 32, 96, 256],
  controlnet_conditioning_channel_order: 'rgb',
};

/** scheduler/scheduler_config.json of SD 1.5, as DDIM. */
export const SD15_SCHEDULER: Record<string, Json> = {
  _class_name: 'DDIMScheduler',
  num_train_timesteps: 1000,
  beta_schedule: 'scaled_linear',
  beta_start: 0.00085,
  beta_end: 0.012,
  steps_offset: 1,
  set_alpha_to_one: false,
  clip_sample: false,
  prediction_type: 'epsilon',
};

export const sd15UnetConfig = (): UNet2DConditionConfig => unetConfig(new Config('SD 1.5 unet/config.json (bench)', SD15_UNET));
export const sd15VaeConfig = (): AutoencoderKLConfig => autoencoderConfig(new Config('SD 1.5 vae/config.json (bench)', SD15_VAE));
export const sd15TextConfig = (): CLIPTextConfig => clipTextConfig(new Config('SD 1.5 text_encoder/config.json (bench)', SD15_TEXT));

/** A Checkpoint component whose config is `raw` and whose weights are `rw` (random, made on read). */
export const randomComponent = (name: string, raw: Record<string, Json>, rw: RandomWeights): ComponentSource => ({
  config: () => new Config(`SD 1.5 ${name}/config.json (bench)`, raw),
  weights: () => rw,
});

/**
 * The UNet graph as src/components/unet.ts `UNet.run` builds it for a text-conditioned UNet: inputs
 * sample / timestep / encoder_hidden_states, then the variant's hooks (which declare its extra inputs).
 */
export function unetGraph(cfg: UNet2DConditionConfig, vb: WeightsView, b: number, s: number, variant?: UNetVariant, precision: Precision = 'fp32'): ShapeGraph {
  const g = usePrecision(new ShapeGraph('unet'), precision);
  const x = g.input('sample', [b, cfg.inChannels, s, s]);
  const t = g.input('timestep', [b]);
  const c = g.input('encoder_hidden_states', [b, 77, cfg.crossAttentionDim]);
  const hooks = variant?.hooks(g, b, { sample: x, timestep: t, encoderHiddenStates: c });
  g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c }, vb, cfg, hooks));
  return g;
}

/** The UNet's own feeds for `b` rows at timestep 981 (the first of 50 DDIM steps). */
export function unetFeeds(cfg: UNet2DConditionConfig, b: number, s: number): Record<string, Feed> {
  return {
    sample: randomTensor([b, cfg.inChannels, s, s], 1),
    timestep: { shape: [b], data: new Float32Array(b).fill(981) },
    encoder_hidden_states: randomTensor([b, 77, cfg.crossAttentionDim], 2),
  };
}

/** The plain CFG step (2 rows), the baseline of both ratio measures; the UNet weights are `rw`. */
export function plainArm(cfg: UNet2DConditionConfig, rw: RandomWeights, s: number): Arm {
  return {
    label: 'plain', key: `bench-unet:${s}`, rows: 2, sources: [rw],
    build: () => unetGraph(cfg, new WeightsView(rw), 2, s),
    feeds: { plain: unetFeeds(cfg, 2, s) },
  };
}

/** The weight tables of the SD 1.5 diffusers folder (file -> table). */
export function sd15WeightTables(): [string, WeightTable][] {
  return [
    ['unet/diffusion_pytorch_model.safetensors', unetWeightTable(sd15UnetConfig())],
    ['vae/diffusion_pytorch_model.safetensors', vaeWeightTable(sd15VaeConfig())],
    ['text_encoder/model.safetensors', clipTextWeightTable(sd15TextConfig())],
  ];
}

/**
 * The SD 1.5 random weights as a diffusers folder of .safetensors files (F32 by default; `write` picks the
 * writer), streamed tensor by tensor (row blocks of 4 MiB): the writer never holds the model.
 */
export function writeRandomCheckpoint(dir: string, write: (file: string, table: WeightTable) => number = writeRandomSafetensors): { bytes: number; parameters: number } {
  const json = (file: string, obj: unknown): void => {
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify(obj, null, 2));
  };
  json(path.join(dir, 'model_index.json'), {
    _class_name: 'StableDiffusionPipeline', _diffusers_version: '0.6.0',
    scheduler: ['diffusers', 'DDIMScheduler'], text_encoder: ['transformers', 'CLIPTextModel'], tokenizer: ['transformers', 'CLIPTokenizer'],
    unet: ['diffusers', 'UNet2DConditionModel'], vae: ['diffusers', 'AutoencoderKL'], safety_checker: [null, null], feature_extractor: [null, null],
  });
  json(path.join(dir, 'scheduler/scheduler_config.json'), SD15_SCHEDULER);
  json(path.join(dir, 'unet/config.json'), SD15_UNET);
  json(path.join(dir, 'vae/config.json'), SD15_VAE);
  json(path.join(dir, 'text_encoder/config.json'), SD15_TEXT);
  json(path.join(dir, 'tokenizer/tokenizer_config.json'), { model_max_length: 77, pad_token: '<|endoftext|>' });
  json(path.join(dir, 'tokenizer/special_tokens_map.json'), { bos_token: '<|startoftext|>', eos_token: '<|endoftext|>', unk_token: '<|endoftext|>', pad_token: '<|endoftext|>' });
  for (const f of ['vocab.json', 'merges.txt']) fs.copyFileSync(path.join(ROOT, 'assets/clip', f), path.join(dir, 'tokenizer', f));
  let bytes = 0, parameters = 0;
  for (const [file, table] of sd15WeightTables()) {
    bytes += write(path.join(dir, file), table);
    for (const s of table.values()) parameters += numel(s.shape);
  }
  return { bytes, parameters };
}

