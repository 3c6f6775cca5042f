/**
 * Single-file Stable Diffusion 1.x / 2.x / XL checkpoints in the original CompVis / Stability layout, as
 * shared on model sites: `model.diffusion_model.*` (UNet), `first_stage_model.*` (VAE) and either
 * `cond_stage_model.transformer.text_model.*` (SD 1.x: a transformers CLIPTextModel) or
 * `cond_stage_model.model.*` (SD 2.x: OpenCLIP ViT-H, fused q/k/v in `attn.in_proj_*`). SDXL (Stability's
 * sgm layout): `conditioner.embedders.0.transformer.*` (CLIP ViT-L, transformers names),
 * `conditioner.embedders.1.model.*` (OpenCLIP bigG with fused q/k/v and a `text_projection` matrix applied
 * as x @ P, i.e. the transpose of diffusers' Linear weight) and `model.diffusion_model.label_emb.0.{0,2}`
 * (diffusers' add_embedding); detected from the keys.
 *
 * Each component is exposed as a TensorSource under diffusers key names (so `new WeightsView(source)`
 * feeds the existing model builders unchanged) with a diffusers-style config inferred from tensor
 * SHAPES in the safetensors header. No tensor data is read to build the mapping; OpenCLIP's fused q/k/v
 * are sliced on demand by a positioned read of just the rows wanted.
 *
 * The key map (original-keymap.ts), the architecture inferred from header shapes and the diffusers keys it
 * needs (original-architecture.ts) and the lazy TensorSource (original-layout-source.ts) live in their own
 * files; this one opens a file and turns what they infer into diffusers configs.
 *
 * What the weights cannot tell (documented defaults, all overridable by options):
 * - prediction type: 'epsilon' unless the safetensors metadata says otherwise (`modelspec.prediction_type`,
 *   a `-v` `modelspec.architecture`) or a `v_pred` marker tensor is present. SD 2.x 768-v models
 *   (stable-diffusion-2, 2-1) need `predictionType: 'v_prediction'`; SD 2.x-base models are epsilon.
 * - attention heads: SD 1.x uses 8 heads everywhere; SD 2.x uses 64-channel heads (attention_head_dim
 *   [5, 10, 20, 20] for 320 base channels); the CLIP text encoders use 64-dim heads (hidden / 64). Models
 *   of other sizes (the tiny test models) need `unetHeads` / `textHeads`.
 * - SD 2.x's text encoder is OpenCLIP's penultimate layer: the last resblock is dropped (23 of ViT-H's 24).
 */
import { FileFormatError, InputError } from '../errors.js';
import { Config, type Json } from './config.js';
import { Header, inferText, inferUnet, inferVae, textKeys, unetKeys, vaeKeys } from './original-architecture.js';
import {
  CLIP_PREFIX, OPEN_CLIP_PREFIX, SDXL_CLIP_PREFIX, SDXL_OPEN_CLIP_PREFIX, UNET_PREFIX, VAE_PREFIX,
  type OriginalComponentName, type OriginalLayoutContext, type TextEncoderLayout,
} from './original-keymap.js';
import { buildEntries, OriginalLayoutSource, RowReader } from './original-layout-source.js';
import { openTensorFile, type TensorFile } from './tensor-file.js';

export type PredictionType = 'epsilon' | 'v_prediction';

export interface OriginalCheckpointOptions {
  /** Force SD 1.x or 2.x (default: 768-dim cross-attention -> 1, 1024 -> 2, else OpenCLIP text keys or linear transformer projections -> 2). */
  sdVersion?: 1 | 2;
  /** Default 'epsilon' unless the file's metadata says v; SD 2.x 768 models need 'v_prediction' (not inferable from weights). */
  predictionType?: PredictionType;
  /** Training resolution, for sample_size (default 768 for SD 2.x v-prediction, else 512). */
  imageSize?: number;
  /** UNet heads per down block (diffusers' legacy `attention_head_dim`); default: 8 (SD 1.x) or channels / 64 (SD 2.x). */
  unetHeads?: number | readonly number[];
  /** Text encoder heads; default hidden_size / 64 (real CLIP-L and OpenCLIP ViT-H). */
  textHeads?: number;
  /** Text encoder layers to keep; default all (CLIP) or all but the last resblock (OpenCLIP, SD 2.x's penultimate layer). */
  textLayers?: number;
  /** Default quick_gelu for OpenAI CLIP (SD 1.x), gelu for OpenCLIP (SD 2.x). */
  textHiddenAct?: 'gelu' | 'quick_gelu';
  /** Default true for SD 2.x (2.1 needs it in half precision; harmless otherwise), false for SD 1.x. */
  upcastAttention?: boolean;
  /** VAE latent scaling factor (default 0.18215, the SD 1.x / 2.x value). */
  vaeScalingFactor?: number;
  /**
   * A diffusers folder whose unet/vae/text_encoder configs, scheduler and tokenizer replace the inferred
   * ones (openCheckpoint only, as diffusers' from_single_file(config=...); the CLI's --config).
   */
  config?: string;
}

/** What a model loader needs of one component (the shape of components/checkpoint.ts's ComponentSource). */
export interface OriginalComponent {
  config(): Config;
  weights(): OriginalLayoutSource;
}

export interface OriginalCheckpoint {
  readonly file: string;
  /** 'xl': SDXL (two text encoders, added conditioning). */
  readonly version: 1 | 2 | 'xl';
  /** Undefined when the file holds no text encoder. */
  readonly textEncoderLayout: TextEncoderLayout | undefined;
  readonly unet: OriginalComponent;
  /** Undefined when the file holds no `first_stage_model.*` tensors. */
  readonly vae: OriginalComponent | undefined;
  /** Undefined when the file holds no `cond_stage_model.*` text encoder. */
  readonly text_encoder: OriginalComponent | undefined;
  /** SDXL's CLIPTextModelWithProjection (OpenCLIP bigG); undefined otherwise. */
  readonly text_encoder_2?: OriginalComponent;
  /** A DDIMScheduler config with SD 1.x / 2.x training values. */
  readonly scheduler: Config;
  /** Guesses made where the weights do not decide (fallback head counts, an SD 2.x prediction type). */
  readonly warnings: readonly string[];
  /** Release the file handles (tensors already read stay valid). */
  close(): void;
}

// ---------------------------------------------------------------------------------------------------
// Opening a file

function notSdMessage(keys: string[], what = `no ${UNET_PREFIX}* tensors`): string {
  const expected = `expected Stable Diffusion 1.x/2.x/XL original-layout keys: ${UNET_PREFIX}* (UNet, e.g. ${UNET_PREFIX}input_blocks.0.0.weight), ${VAE_PREFIX}* (VAE) and ${CLIP_PREFIX}text_model.*, ${OPEN_CLIP_PREFIX}* or ${SDXL_CLIP_PREFIX}* + ${SDXL_OPEN_CLIP_PREFIX}* (text encoders)`;
  let hint = '';
  if (keys.some((k) => /(^|\.)(joint_blocks|double_blocks)\./.test(k))) hint = ' This looks like an SD3/Flux transformer checkpoint, which is not supported.';
  else if (keys.some((k) => /^(down_blocks|up_blocks|mid_block|text_model|encoder\.down_blocks)\./.test(k))) hint = ' This looks like one diffusers component file; pass the diffusers model folder instead.';
  const sample = keys.slice(0, 3).join(', ');
  return `not a Stable Diffusion 1.x/2.x/XL single-file checkpoint: ${what}; ${expected}. Found ${keys.length} tensors${sample ? ` (e.g. ${sample})` : ''}.${hint}`;
}

function metadataPrediction(meta: Readonly<Record<string, string>>): PredictionType | undefined {
  const p = meta['modelspec.prediction_type']?.trim().toLowerCase();
  if (p === 'v' || p === 'v_prediction' || p === 'v-prediction' || p === 'velocity') return 'v_prediction';
  if (p === 'epsilon' || p === 'eps') return 'epsilon';
  const arch = meta['modelspec.architecture']?.trim().toLowerCase();
  if (arch?.startsWith('stable-diffusion-v2') && arch.endsWith('-v')) return 'v_prediction';
  return undefined;
}

function positiveInt(name: string, v: number | undefined): void {
  if (v !== undefined && !(Number.isInteger(v) && v > 0)) throw new InputError(`${name} must be a positive integer, got ${v}`);
}

/** The DDIMScheduler config SD 1.x / 2.x were trained with (scaled_linear 0.00085..0.012 over 1000 steps). */
export function sdSchedulerConfig(predictionType: PredictionType): Record<string, Json> {
  return {
    _class_name: 'DDIMScheduler',
    num_train_timesteps: 1000,
    beta_start: 0.00085,
    beta_end: 0.012,
    beta_schedule: 'scaled_linear',
    trained_betas: null,
    clip_sample: false,
    clip_sample_range: 1.0,
    set_alpha_to_one: false,
    steps_offset: 1,
    prediction_type: predictionType,
    timestep_spacing: 'leading',
    thresholding: false,
    dynamic_thresholding_ratio: 0.995,
    sample_max_value: 1.0,
    rescale_betas_zero_snr: false,
  };
}

/** The EulerDiscreteScheduler config SDXL base ships (diffusers' scheduler_config.json of stable-diffusion-xl-base-1.0). */
export function sdxlSchedulerConfig(): Record<string, Json> {
  return {
    _class_name: 'EulerDiscreteScheduler',
    num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', trained_betas: null,
    clip_sample: false, set_alpha_to_one: false, skip_prk_steps: true, sample_max_value: 1.0, steps_offset: 1,
    prediction_type: 'epsilon', timestep_spacing: 'leading', interpolation_type: 'linear', use_karras_sigmas: false,
  };
}

/**
 * Open a single-file SD 1.x / 2.x / XL checkpoint: `.safetensors`, or a torch pickle (.ckpt/.pt/.pth/.bin) read
 * weights-only (nothing in it is executed; see tensor-file.ts). Only the header / pickle is read here;
 * tensors are read when a model asks for them.
 */
export function openOriginalCheckpoint(file: string, opts: OriginalCheckpointOptions = {}): OriginalCheckpoint {
  if (opts.sdVersion !== undefined && opts.sdVersion !== 1 && opts.sdVersion !== 2) throw new InputError(`sdVersion must be 1 or 2, got ${String(opts.sdVersion)}`);
  if (opts.predictionType !== undefined && opts.predictionType !== 'epsilon' && opts.predictionType !== 'v_prediction') {
    throw new InputError(`predictionType must be 'epsilon' or 'v_prediction', got ${String(opts.predictionType)}`);
  }
  positiveInt('imageSize', opts.imageSize);
  positiveInt('textHeads', opts.textHeads);
  positiveInt('textLayers', opts.textLayers);
  const sf = openTensorFile(file);
  const rowReader = new RowReader(file);
  try {
    return build(file, sf, rowReader, opts);
  } catch (e) {
    sf.close();
    rowReader.close();
    throw e;
  }
}

function build(file: string, sf: TensorFile, rowReader: RowReader, opts: OriginalCheckpointOptions): OriginalCheckpoint {
  const h = new Header(sf);
  const allKeys = [...sf.tensors.keys()];
  if (!allKeys.some((k) => k.startsWith(UNET_PREFIX))) throw new FileFormatError(file, notSdMessage(allKeys));
  if (!h.has(`${UNET_PREFIX}input_blocks.0.0.weight`)) throw new FileFormatError(file, notSdMessage(allKeys, `it has ${UNET_PREFIX}* tensors but no UNet ${UNET_PREFIX}input_blocks.0.0.weight`));
  // SDXL: label_emb.0 (text_time added conditioning) with sgm's conditioner embedders (or no text encoder at all).
  const hasLabel = h.has(`${UNET_PREFIX}label_emb.0.0.weight`);
  const sdxl = hasLabel && !allKeys.some((k) => k.startsWith('cond_stage_model.'));
  if ((hasLabel && !sdxl) || h.has(`${UNET_PREFIX}label_emb.weight`)) {
    throw new FileFormatError(file, 'class-conditioned UNets (label_emb with cond_stage_model: SD x4 upscaler, unCLIP) are not supported; only SD 1.x / 2.x / XL text-to-image UNets', `${UNET_PREFIX}label_emb`);
  }
  if (sdxl && opts.sdVersion !== undefined) throw new InputError(`--sd-version ${opts.sdVersion}: ${file} is an SDXL checkpoint (label_emb and conditioner.embedders keys)`);
  const warnings: string[] = [];

  const unet = inferUnet(h);
  const vae = allKeys.some((k) => k.startsWith(VAE_PREFIX)) ? inferVae(h) : undefined;
  const textLayout: TextEncoderLayout | undefined = sdxl ? (allKeys.some((k) => k.startsWith(SDXL_CLIP_PREFIX)) ? 'clip' : undefined)
    : allKeys.some((k) => k.startsWith(OPEN_CLIP_PREFIX)) ? 'openclip'
    : allKeys.some((k) => k.startsWith(CLIP_PREFIX)) ? 'clip' : undefined;
  const sdxlPrefixes = sdxl ? { clip: SDXL_CLIP_PREFIX, openclip: SDXL_OPEN_CLIP_PREFIX } : undefined;
  const text = textLayout ? inferText(h, textLayout, sdxl ? undefined : opts.textLayers, sdxlPrefixes) : undefined;
  const text2 = sdxl && allKeys.some((k) => k.startsWith(SDXL_OPEN_CLIP_PREFIX)) ? inferText(h, 'openclip', undefined, sdxlPrefixes) : undefined;

  const version: 1 | 2 | 'xl' = sdxl ? 'xl' : opts.sdVersion
    ?? (unet.crossAttentionDim === 1024 ? 2 : unet.crossAttentionDim === 768 ? 1 : textLayout === 'openclip' || unet.linearProjection ? 2 : 1);

  let predictionType = opts.predictionType ?? metadataPrediction(sf.metadata);
  if (predictionType === undefined && sf.tensors.has('v_pred')) predictionType = 'v_prediction';
  if (predictionType === undefined) {
    predictionType = 'epsilon';
    if (version === 2) warnings.push(`${file}: SD 2.x checkpoint with no prediction type in its metadata; assuming 'epsilon' (right for 2.x-base). The 768x768 SD 2.0/2.1 models need predictionType 'v_prediction'.`);
  }
  const n = unet.channels.length;
  const vaeScale = vae ? 2 ** (vae.channels.length - 1) : 8;
  const imageSize = opts.imageSize ?? (version === 'xl' ? 1024 : version === 2 && predictionType === 'v_prediction' ? 768 : 512);

  // UNet heads (diffusers' legacy attention_head_dim = number of heads).
  let heads: number[];
  if (opts.unetHeads !== undefined) {
    heads = typeof opts.unetHeads === 'number' ? Array<number>(n).fill(opts.unetHeads) : [...opts.unetHeads];
    if (heads.length !== n) throw new InputError(`unetHeads: expected ${n} values (one per UNet block), got ${heads.length}`);
  } else if (version === 1) {
    heads = Array<number>(n).fill(8);
  } else {
    heads = unet.channels.map((c) => c % 64 === 0 ? c / 64 : 0);
    if (heads.includes(0)) {
      warnings.push(`${file}: UNet channels [${unet.channels.join(', ')}] are not multiples of SD 2.x's 64-channel heads; using 1 head where they are not. Pass unetHeads to set them.`);
      heads = heads.map((x) => x || 1);
    }
  }
  heads.forEach((x, i) => {
    if (!(Number.isInteger(x) && x > 0 && unet.channels[i]! % x === 0)) throw new InputError(`unetHeads: ${x} heads do not divide block ${i}'s ${unet.channels[i]} channels`);
  });
  const depthJson: Json = unet.depth.every((d) => d === unet.depth[0]) ? unet.depth[0]! : unet.depth;
  const unetJson: Record<string, Json> = {
    _class_name: 'UNet2DConditionModel',
    act_fn: 'silu',
    attention_head_dim: heads.every((x) => x === heads[0]) ? heads[0]! : heads,
    block_out_channels: unet.channels,
    center_input_sample: false,
    cross_attention_dim: unet.crossAttentionDim,
    down_block_types: unet.downAttention.map((a) => a ? 'CrossAttnDownBlock2D' : 'DownBlock2D'),
    downsample_padding: 1,
    flip_sin_to_cos: true,
    freq_shift: 0,
    in_channels: unet.inChannels,
    layers_per_block: unet.layersPerBlock,
    mid_block_type: 'UNetMidBlock2DCrossAttn',
    norm_eps: 1e-5,
    norm_num_groups: 32,
    out_channels: unet.outChannels,
    sample_size: Math.floor(imageSize / vaeScale),
    transformer_layers_per_block: depthJson,
    up_block_types: unet.upAttention.map((a) => a ? 'CrossAttnUpBlock2D' : 'UpBlock2D'),
    upcast_attention: opts.upcastAttention ?? version === 2,
    use_linear_projection: unet.linearProjection,
  };
  if (unet.addInputDim !== undefined) {
    // pooled width: the second encoder's projection (1280 for SDXL base when the file holds no text encoder)
    const pooled = text2 ? h.dim(`${SDXL_OPEN_CLIP_PREFIX}text_projection`, 1, 'the pooled text width', 2) : 1280;
    const timeDim = (unet.addInputDim - pooled) / 6;
    if (!Number.isInteger(timeDim) || timeDim < 1) {
      throw new FileFormatError(file, `label_emb.0.0 takes ${unet.addInputDim} inputs, which is not the pooled text width ${pooled} + 6 time ids x an integer width`, `${UNET_PREFIX}label_emb.0.0.weight`);
    }
    Object.assign(unetJson, { addition_embed_type: 'text_time', addition_time_embed_dim: timeDim, projection_class_embeddings_input_dim: unet.addInputDim });
  }
  if (unet.condProj) unetJson.time_cond_proj_dim = unet.condProj.dim;

  const ctx: OriginalLayoutContext = {
    layersPerBlock: unet.layersPerBlock,
    upBlockHasAttention: unet.upAttention,
    vaeLevels: vae?.channels.length ?? 0,
    textLayout: textLayout ?? 'clip',
    ...(sdxl ? { sdxl: true } : {}),
    ...(unet.condProj ? { unetCondProj: unet.condProj.prefix } : {}),
  };
  const component = (name: OriginalComponentName, json: Record<string, Json>, keys: string[], rename?: (k: string) => string): OriginalComponent => {
    const source = new OriginalLayoutSource(file, sf, buildEntries(h, name, keys, ctx, rename), rowReader);
    const config = new Config(file, json);
    return { config: () => config, weights: () => source };
  };

  let vaeComponent: OriginalComponent | undefined;
  if (vae) {
    const vaeJson: Record<string, Json> = {
      _class_name: 'AutoencoderKL',
      act_fn: 'silu',
      block_out_channels: vae.channels,
      down_block_types: vae.channels.map(() => 'DownEncoderBlock2D'),
      force_upcast: true,
      in_channels: vae.inChannels,
      latent_channels: vae.latentChannels,
      layers_per_block: vae.layersPerBlock,
      mid_block_add_attention: vae.midAttention,
      norm_num_groups: 32,
      out_channels: vae.outChannels,
      sample_size: imageSize,
      scaling_factor: opts.vaeScalingFactor ?? (sdxl ? 0.13025 : 0.18215),
      up_block_types: vae.channels.map(() => 'UpDecoderBlock2D'),
      use_quant_conv: vae.quantConv,
      use_post_quant_conv: vae.postQuantConv,
    };
    vaeComponent = component('vae', vaeJson, vaeKeys(vae));
  }

  let textComponent: OriginalComponent | undefined;
  if (text) {
    let textHeads = opts.textHeads;
    if (textHeads === undefined) {
      if (text.hidden % 64 === 0) textHeads = text.hidden / 64;
      else {
        textHeads = 1;
        warnings.push(`${file}: text encoder width ${text.hidden} is not a multiple of CLIP's 64-dim heads; using 1 head. Pass textHeads to set it.`);
      }
    }
    if (text.hidden % textHeads !== 0) throw new InputError(`textHeads: ${textHeads} heads do not divide the text encoder's width ${text.hidden}`);
    const textJson: Record<string, Json> = {
      architectures: ['CLIPTextModel'],
      model_type: 'clip_text_model',
      bos_token_id: 49406,
      eos_token_id: 49407,
      pad_token_id: 1,
      hidden_act: opts.textHiddenAct ?? (text.layout === 'openclip' ? 'gelu' : 'quick_gelu'),
      hidden_size: text.hidden,
      intermediate_size: text.intermediate,
      layer_norm_eps: 1e-5,
      max_position_embeddings: text.maxPositions,
      num_attention_heads: textHeads,
      num_hidden_layers: text.layers,
      vocab_size: text.vocab,
    };
    // Legacy CLIP exports without the `text_model.` level: strip it from the looked-up name.
    const rename = text.legacyClip ? (k: string): string => CLIP_PREFIX + k.slice(`${CLIP_PREFIX}text_model.`.length) : undefined;
    textComponent = component('text_encoder', textJson, textKeys(text), rename);
  }

  let text2Component: OriginalComponent | undefined;
  if (text2) {
    const heads = opts.textHeads ?? (text2.hidden % 64 === 0 ? text2.hidden / 64 : 1);
    if (opts.textHeads === undefined && text2.hidden % 64 !== 0) warnings.push(`${file}: second text encoder width ${text2.hidden} is not a multiple of 64-dim heads; using 1 head. Pass textHeads to set it.`);
    if (text2.hidden % heads !== 0) throw new InputError(`textHeads: ${heads} heads do not divide the second text encoder's width ${text2.hidden}`);
    const projection = h.dim(`${SDXL_OPEN_CLIP_PREFIX}text_projection`, 1, 'projection_dim', 2);
    // diffusers' SDXL text_encoder_2 config (legacy token ids: pooling at the first end-of-text, the largest id).
    text2Component = component('text_encoder_2', {
      architectures: ['CLIPTextModelWithProjection'], model_type: 'clip_text_model', bos_token_id: 0, eos_token_id: 2, pad_token_id: 1,
      hidden_act: 'gelu', hidden_size: text2.hidden, intermediate_size: text2.intermediate, layer_norm_eps: 1e-5, max_position_embeddings: text2.maxPositions,
      num_attention_heads: heads, num_hidden_layers: text2.layers, projection_dim: projection, vocab_size: text2.vocab,
    }, textKeys(text2, true));
  }

  const unetComponent = component('unet', unetJson, unetKeys(unet));
  return {
    file,
    version,
    textEncoderLayout: textLayout,
    unet: unetComponent,
    vae: vaeComponent,
    text_encoder: textComponent,
    ...(text2Component ? { text_encoder_2: text2Component } : {}),
    scheduler: new Config(file, sdxl ? sdxlSchedulerConfig() : sdSchedulerConfig(predictionType)),
    warnings,
    close: () => { sf.close(); rowReader.close(); },
  };
}
