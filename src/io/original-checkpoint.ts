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
 * The mapping is written once, diffusers -> original (`originalKeyOf`, the well-known table of diffusers'
 * single_file_utils.py); the forward direction enumerates the diffusers keys the inferred architecture
 * needs and looks each up under its original name, so a missing tensor is reported with the file and
 * the ORIGINAL key name when the checkpoint is opened, not later in the middle of a graph build.
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
import fs from 'node:fs';
import { FileFormatError, InputError } from '../errors.js';
import { concatRows, numel, type Tensor } from '../tensor.js';
import { Config, type Json } from './config.js';
import { toFloat32, type TensorInfo } from './safetensors.js';
import { openTensorFile, type TensorFile } from './tensor-file.js';
import type { TensorSource } from './weights.js';

export const UNET_PREFIX = 'model.diffusion_model.';
export const VAE_PREFIX = 'first_stage_model.';
/** SD 1.x text encoder (transformers CLIPTextModel); `text_model.` is part of the diffusers name. */
export const CLIP_PREFIX = 'cond_stage_model.transformer.';
/** SD 2.x text encoder (OpenCLIP). */
export const OPEN_CLIP_PREFIX = 'cond_stage_model.model.';
/** SDXL's first text encoder (transformers CLIPTextModel, `text_model.` part of the diffusers name). */
export const SDXL_CLIP_PREFIX = 'conditioner.embedders.0.transformer.';
/** SDXL's second text encoder (OpenCLIP bigG with text_projection). */
export const SDXL_OPEN_CLIP_PREFIX = 'conditioner.embedders.1.model.';

export type OriginalComponentName = 'unet' | 'vae' | 'text_encoder' | 'text_encoder_2';
export type TextEncoderLayout = 'clip' | 'openclip';
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
// diffusers -> original key map

/** Where a diffusers tensor lives in the original layout. */
export interface OriginalRef {
  /** Full original key, with its component prefix. */
  readonly key: string;
  /** q (0), k (1) or v (2) rows of a fused OpenCLIP `in_proj_weight` / `in_proj_bias`. */
  readonly qkvPart?: 0 | 1 | 2;
  /** A VAE mid-block attention weight: a 1x1 conv [C, C, 1, 1] in the original, Linear [C, C] in diffusers. */
  readonly conv1x1?: boolean;
  /** OpenCLIP's text_projection: stored [hidden, proj] (x @ P), diffusers' Linear weight is its transpose. */
  readonly transpose?: boolean;
}

/** Structure the key map depends on (what a diffusers key alone does not say). */
export interface OriginalLayoutContext {
  /** UNet resnets per down block. */
  readonly layersPerBlock: number;
  /** Per UNet up block (diffusers order): has attentions (its upsampler is then `output_blocks.N.2`, else `.1`). */
  readonly upBlockHasAttention: readonly boolean[];
  /** VAE levels (the original stores the decoder's up blocks in reverse order). */
  readonly vaeLevels: number;
  readonly textLayout: TextEncoderLayout;
  /** SDXL's prefixes (conditioner.embedders.0/1) for the text encoders. */
  readonly sdxl?: boolean;
  /** Where an LCM-distilled UNet's guidance projection (diffusers time_embedding.cond_proj) lives in the file. */
  readonly unetCondProj?: string;
}

/**
 * The spellings of LCM's guidance projection in single files: converters that keep unknown diffusers names
 * (the usual case) write `time_embedding.cond_proj`; some write it under the ldm time_embed's first Linear.
 */
const COND_PROJ_ORIGINAL = ['time_embedding.cond_proj.', 'time_embed.0.cond_proj.'] as const;

const RESNET_UNET: Record<string, string> = {
  norm1: 'in_layers.0', conv1: 'in_layers.2', time_emb_proj: 'emb_layers.1', norm2: 'out_layers.0', conv2: 'out_layers.3', conv_shortcut: 'skip_connection',
};

function renameHead(rest: string, table: Record<string, string>): string | undefined {
  const dot = rest.indexOf('.');
  if (dot < 0) return undefined;
  const to = table[rest.slice(0, dot)];
  return to === undefined ? undefined : to + rest.slice(dot);
}

function unetOriginal(k: string, ctx: OriginalLayoutContext): string | undefined {
  const fixed: [string, string][] = [
    ['time_embedding.linear_1.', 'time_embed.0.'], ['time_embedding.linear_2.', 'time_embed.2.'],
    ['conv_in.', 'input_blocks.0.0.'], ['conv_norm_out.', 'out.0.'], ['conv_out.', 'out.2.'],
    ['add_embedding.linear_1.', 'label_emb.0.0.'], ['add_embedding.linear_2.', 'label_emb.0.2.'],
  ];
  if (k.startsWith('time_embedding.cond_proj.')) return (ctx.unetCondProj ?? COND_PROJ_ORIGINAL[0]) + k.slice('time_embedding.cond_proj.'.length);
  for (const [d, o] of fixed) if (k.startsWith(d)) return o + k.slice(d.length);
  const per = ctx.layersPerBlock + 1;
  let m: RegExpExecArray | null;
  if ((m = /^down_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(k))) {
    const i = Number(m[1]) * per + Number(m[3]) + 1;
    if (m[2] === 'attentions') return `input_blocks.${i}.1.${m[4]}`;
    const r = renameHead(m[4]!, RESNET_UNET);
    return r && `input_blocks.${i}.0.${r}`;
  }
  if ((m = /^down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(k))) return `input_blocks.${(Number(m[1]) + 1) * per}.0.op.${m[2]}`;
  if ((m = /^mid_block\.resnets\.([01])\.(.+)$/.exec(k))) {
    const r = renameHead(m[2]!, RESNET_UNET);
    return r && `middle_block.${2 * Number(m[1])}.${r}`;
  }
  if ((m = /^mid_block\.attentions\.0\.(.+)$/.exec(k))) return `middle_block.1.${m[1]}`;
  if ((m = /^up_blocks\.(\d+)\.(resnets|attentions)\.(\d+)\.(.+)$/.exec(k))) {
    const i = Number(m[1]) * per + Number(m[3]);
    if (m[2] === 'attentions') return `output_blocks.${i}.1.${m[4]}`;
    const r = renameHead(m[4]!, RESNET_UNET);
    return r && `output_blocks.${i}.0.${r}`;
  }
  if ((m = /^up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/.exec(k))) {
    const b = Number(m[1]);
    const slot = ctx.upBlockHasAttention[b] ? 2 : 1;
    return `output_blocks.${b * per + ctx.layersPerBlock}.${slot}.conv.${m[2]}`;
  }
  return undefined;
}

const VAE_ATTN: Record<string, string> = { group_norm: 'norm', to_q: 'q', to_k: 'k', to_v: 'v', 'to_out.0': 'proj_out' };

function vaeResnet(rest: string): string {
  return rest.startsWith('conv_shortcut.') ? `nin_shortcut.${rest.slice('conv_shortcut.'.length)}` : rest;
}

function vaeOriginal(k: string, ctx: OriginalLayoutContext): OriginalRef | undefined {
  let m: RegExpExecArray | null;
  if ((m = /^(encoder|decoder)\.conv_norm_out\.(.+)$/.exec(k))) return { key: `${m[1]}.norm_out.${m[2]}` };
  if (/^(encoder|decoder)\.(conv_in|conv_out)\.[^.]+$/.test(k) || /^(post_)?quant_conv\.[^.]+$/.test(k)) return { key: k };
  if ((m = /^(encoder|decoder)\.mid_block\.resnets\.([01])\.(.+)$/.exec(k))) return { key: `${m[1]}.mid.block_${Number(m[2]) + 1}.${vaeResnet(m[3]!)}` };
  if ((m = /^(encoder|decoder)\.mid_block\.attentions\.0\.(group_norm|to_q|to_k|to_v|to_out\.0)\.(weight|bias)$/.exec(k))) {
    return { key: `${m[1]}.mid.attn_1.${VAE_ATTN[m[2]!]}.${m[3]}`, ...(m[2] !== 'group_norm' && m[3] === 'weight' ? { conv1x1: true } : {}) };
  }
  if ((m = /^encoder\.down_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(k))) return { key: `encoder.down.${m[1]}.block.${m[2]}.${vaeResnet(m[3]!)}` };
  if ((m = /^encoder\.down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)$/.exec(k))) return { key: `encoder.down.${m[1]}.downsample.conv.${m[2]}` };
  if ((m = /^decoder\.up_blocks\.(\d+)\.resnets\.(\d+)\.(.+)$/.exec(k))) return { key: `decoder.up.${ctx.vaeLevels - 1 - Number(m[1])}.block.${m[2]}.${vaeResnet(m[3]!)}` };
  if ((m = /^decoder\.up_blocks\.(\d+)\.upsamplers\.0\.conv\.(.+)$/.exec(k))) return { key: `decoder.up.${ctx.vaeLevels - 1 - Number(m[1])}.upsample.conv.${m[2]}` };
  return undefined;
}

const OPEN_CLIP_LAYER: Record<string, string> = {
  layer_norm1: 'ln_1', layer_norm2: 'ln_2', 'mlp.fc1': 'mlp.c_fc', 'mlp.fc2': 'mlp.c_proj', 'self_attn.out_proj': 'attn.out_proj',
};

function openClipOriginal(k: string): { key: string; qkvPart?: 0 | 1 | 2; transpose?: boolean } | undefined {
  if (k === 'text_projection.weight') return { key: 'text_projection', transpose: true };
  const fixed: Record<string, string> = {
    'text_model.embeddings.token_embedding.weight': 'token_embedding.weight',
    'text_model.embeddings.position_embedding.weight': 'positional_embedding',
    'text_model.final_layer_norm.weight': 'ln_final.weight',
    'text_model.final_layer_norm.bias': 'ln_final.bias',
  };
  if (fixed[k] !== undefined) return { key: fixed[k] };
  const m = /^text_model\.encoder\.layers\.(\d+)\.(.+)\.(weight|bias)$/.exec(k);
  if (!m) return undefined;
  const block = `transformer.resblocks.${m[1]}`;
  const qkv = /^self_attn\.([qkv])_proj$/.exec(m[2]!);
  if (qkv) return { key: `${block}.attn.in_proj_${m[3]}`, qkvPart: 'qkv'.indexOf(qkv[1]!) as 0 | 1 | 2 };
  const to = OPEN_CLIP_LAYER[m[2]!];
  return to === undefined ? undefined : { key: `${block}.${to}.${m[3]}` };
}

/** The original-layout name of one diffusers tensor (undefined if the key has none). */
export function originalKeyOf(component: OriginalComponentName, diffusersKey: string, ctx: OriginalLayoutContext): OriginalRef | undefined {
  switch (component) {
    case 'unet': {
      const k = unetOriginal(diffusersKey, ctx);
      return k === undefined ? undefined : { key: UNET_PREFIX + k };
    }
    case 'vae': {
      const r = vaeOriginal(diffusersKey, ctx);
      return r && { ...r, key: VAE_PREFIX + r.key };
    }
    case 'text_encoder': {
      if (ctx.sdxl) return diffusersKey.startsWith('text_model.') ? { key: SDXL_CLIP_PREFIX + diffusersKey } : undefined;
      if (ctx.textLayout === 'clip') {
        if (!diffusersKey.startsWith('text_model.')) return undefined;
        return { key: CLIP_PREFIX + diffusersKey };
      }
      const r = openClipOriginal(diffusersKey);
      return r && { ...r, key: OPEN_CLIP_PREFIX + r.key };
    }
    case 'text_encoder_2': {
      const r = openClipOriginal(diffusersKey);
      return r && { ...r, key: SDXL_OPEN_CLIP_PREFIX + r.key };
    }
  }
}

export interface DiffusersComponents {
  unet?: Readonly<Record<string, Tensor>>;
  vae?: Readonly<Record<string, Tensor>>;
  text_encoder?: Readonly<Record<string, Tensor>>;
}

/** SDXL's components: a second text encoder (CLIPTextModelWithProjection), whose presence selects the SDXL layout. */
export interface DiffusersComponentsXL extends DiffusersComponents {
  text_encoder_2?: Readonly<Record<string, Tensor>>;
}

/** The key-map context a set of diffusers state dicts implies. */
export function layoutContextFromKeys(parts: DiffusersComponentsXL, textLayout: TextEncoderLayout = 'clip'): OriginalLayoutContext {
  const unetKeys = Object.keys(parts.unet ?? {});
  const count = (keys: string[], re: RegExp): number => new Set(keys.map((k) => re.exec(k)?.[1]).filter((x) => x !== undefined)).size;
  const layersPerBlock = count(unetKeys, /^down_blocks\.0\.resnets\.(\d+)\./);
  const upLevels = count(unetKeys, /^up_blocks\.(\d+)\./);
  const upBlockHasAttention = Array.from({ length: upLevels }, (_, b) => unetKeys.some((k) => k.startsWith(`up_blocks.${b}.attentions.`)));
  const vaeLevels = count(Object.keys(parts.vae ?? {}), /^encoder\.down_blocks\.(\d+)\./);
  return { layersPerBlock, upBlockHasAttention, vaeLevels, textLayout, ...(parts.text_encoder_2 ? { sdxl: true } : {}) };
}

/**
 * Re-save diffusers state dicts in the original single-file layout (the inverse of openOriginalCheckpoint):
 * prefixes added, VAE attention weights reshaped to 1x1 convs, OpenCLIP q/k/v fused into in_proj.
 * For 'openclip' the result has exactly the given layers; SD 2.x files carry one more resblock that
 * the loader drops (append it yourself to mimic one).
 */
export function toOriginalLayout(parts: DiffusersComponentsXL, opts: { textLayout?: TextEncoderLayout } = {}): Record<string, Tensor> {
  const ctx = layoutContextFromKeys(parts, opts.textLayout ?? 'clip');
  const out: Record<string, Tensor> = {};
  const fused = new Map<string, (Tensor | undefined)[]>();
  for (const component of ['unet', 'vae', 'text_encoder', 'text_encoder_2'] as const) {
    for (const [key, t] of Object.entries(parts[component] ?? {})) {
      if (key.endsWith('position_ids')) continue; // a buffer, not a weight
      const ref = originalKeyOf(component, key, ctx);
      if (!ref) throw new InputError(`toOriginalLayout: no original-layout name for ${component} tensor ${key}`);
      if (ref.qkvPart !== undefined) {
        const slot = fused.get(ref.key) ?? [undefined, undefined, undefined];
        slot[ref.qkvPart] = t;
        fused.set(ref.key, slot);
      } else {
        out[ref.key] = ref.conv1x1 && t.shape.length === 2 ? { shape: [...t.shape, 1, 1], data: t.data } : ref.transpose ? transpose2D(t) : t;
      }
    }
  }
  for (const [key, [q, k, v]] of fused) {
    if (!q || !k || !v) throw new InputError(`toOriginalLayout: ${key} needs all of q_proj, k_proj and v_proj`);
    out[key] = concatRows([q, k, v]);
  }
  return out;
}

function transpose2D(t: Tensor): Tensor {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data: out };
}

// ---------------------------------------------------------------------------------------------------
// Architecture inferred from header shapes

interface UNetArch {
  inChannels: number;
  outChannels: number;
  channels: number[];
  layersPerBlock: number;
  downAttention: boolean[];
  /** diffusers up-block order */
  upAttention: boolean[];
  /** transformer blocks per level (down order) */
  depth: number[];
  crossAttentionDim: number;
  linearProjection: boolean;
  /** SDXL: in_features of label_emb.0.0 (diffusers' projection_class_embeddings_input_dim). */
  addInputDim?: number;
  /** LCM-distilled: the guidance projection's original prefix and its in_features (diffusers' time_cond_proj_dim). */
  condProj?: { prefix: string; dim: number };
}

interface VaeArch {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  channels: number[];
  layersPerBlock: number;
  midAttention: boolean;
  quantConv: boolean;
  postQuantConv: boolean;
}

interface TextArch {
  layout: TextEncoderLayout;
  /** CLIP stored without the `text_model.` level (old exports). */
  legacyClip: boolean;
  hidden: number;
  intermediate: number;
  layers: number;
  storedLayers: number;
  vocab: number;
  maxPositions: number;
}

class Header {
  constructor(readonly file: TensorFile) {}
  get path(): string { return this.file.path; }
  has(k: string): boolean { return this.file.tensors.has(k); }
  shape(k: string, why: string): readonly number[] {
    const t = this.file.tensors.get(k);
    if (!t) throw new FileFormatError(this.path, `missing tensor (needed to infer ${why})`, k);
    return t.shape;
  }
  dim(k: string, axis: number, why: string, rank?: number): number {
    const s = this.shape(k, why);
    if ((rank !== undefined && s.length !== rank) || s[axis] === undefined) {
      throw new FileFormatError(this.path, `unexpected shape [${s.join(', ')}] (needed to infer ${why})`, k);
    }
    return s[axis]!;
  }
  /** Distinct values of the first capture group over all keys. */
  indices(re: RegExp): number[] {
    const out = new Set<number>();
    for (const k of this.file.tensors.keys()) {
      const m = re.exec(k);
      if (m) out.add(Number(m[1]));
    }
    return [...out].sort((a, b) => a - b);
  }
}

const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

function inferUnet(h: Header): UNetArch {
  const P = UNET_PREFIX;
  const why = 'the UNet configuration';
  const convIn = h.shape(`${P}input_blocks.0.0.weight`, why);
  if (convIn.length !== 4) throw new FileFormatError(h.path, `expected a 4-D conv weight, got shape [${convIn.join(', ')}]`, `${P}input_blocks.0.0.weight`);
  const blocks = h.indices(new RegExp(`^${esc(P)}input_blocks\\.(\\d+)\\.`));
  const numInput = blocks.length === 0 ? 0 : blocks[blocks.length - 1]! + 1;
  const ops = h.indices(new RegExp(`^${esc(P)}input_blocks\\.(\\d+)\\.0\\.op\\.weight$`));
  const layersPerBlock = ops.length > 0 ? ops[0]! - 1 : numInput - 1;
  const levels = ops.length + 1;
  const per = layersPerBlock + 1;
  if (layersPerBlock < 1 || numInput !== levels * per || ops.some((o, i) => o !== (i + 1) * per)) {
    throw new FileFormatError(h.path, `unexpected UNet layout: ${numInput} input blocks with downsamplers at [${ops.join(', ')}] do not form levels of equal depth (not an SD 1.x/2.x UNet?)`, `${P}input_blocks`);
  }
  const channels: number[] = [];
  const downAttention: boolean[] = [];
  const depth: number[] = [];
  let firstAttn: string | undefined;
  for (let b = 0; b < levels; b++) {
    const i = 1 + b * per;
    channels.push(h.dim(`${P}input_blocks.${i}.0.out_layers.3.weight`, 0, why));
    const attn = `${P}input_blocks.${i}.1.`;
    const has = h.has(`${attn}proj_in.weight`);
    downAttention.push(has);
    if (has) {
      firstAttn ??= attn;
      depth.push(h.indices(new RegExp(`^${esc(attn)}transformer_blocks\\.(\\d+)\\.`)).length);
    } else {
      depth.push(1);
    }
  }
  const upAttention = Array.from({ length: levels }, (_, u) => h.has(`${P}output_blocks.${u * per}.1.proj_in.weight`));
  if (!h.has(`${P}middle_block.1.proj_in.weight`)) {
    throw new FileFormatError(h.path, 'the UNet mid block has no cross-attention transformer (SD 1.x/2.x UNets have one)', `${P}middle_block.1.proj_in.weight`);
  }
  firstAttn ??= `${P}middle_block.1.`;
  const crossAttentionDim = h.dim(`${firstAttn}transformer_blocks.0.attn2.to_k.weight`, 1, 'cross_attention_dim', 2);
  const linearProjection = h.shape(`${firstAttn}proj_in.weight`, 'use_linear_projection').length === 2;
  const label = `${P}label_emb.0.0.weight`;
  return {
    inChannels: convIn[1]!,
    outChannels: h.dim(`${P}out.2.weight`, 0, why),
    channels, layersPerBlock, downAttention, upAttention, depth, crossAttentionDim, linearProjection,
    ...(h.has(label) ? { addInputDim: h.dim(label, 1, 'projection_class_embeddings_input_dim', 2) } : {}),
    ...condProjOf(h),
  };
}

function condProjOf(h: Header): { condProj?: { prefix: string; dim: number } } {
  const prefix = COND_PROJ_ORIGINAL.find((p) => h.has(`${UNET_PREFIX}${p}weight`));
  return prefix ? { condProj: { prefix, dim: h.dim(`${UNET_PREFIX}${prefix}weight`, 1, 'time_cond_proj_dim', 2) } } : {};
}

function inferVae(h: Header): VaeArch {
  const P = VAE_PREFIX;
  const why = 'the VAE configuration';
  const levels = h.indices(new RegExp(`^${esc(P)}encoder\\.down\\.(\\d+)\\.`));
  if (levels.length === 0 || levels[levels.length - 1] !== levels.length - 1) {
    throw new FileFormatError(h.path, `expected VAE encoder levels ${P}encoder.down.0, .1, ...; found [${levels.join(', ')}]`, `${P}encoder.down.0`);
  }
  const channels = levels.map((i) => h.dim(`${P}encoder.down.${i}.block.0.conv1.weight`, 0, why));
  const layersPerBlock = h.indices(new RegExp(`^${esc(P)}encoder\\.down\\.0\\.block\\.(\\d+)\\.`)).length;
  return {
    inChannels: h.dim(`${P}encoder.conv_in.weight`, 1, why),
    outChannels: h.dim(`${P}decoder.conv_out.weight`, 0, why),
    latentChannels: h.dim(`${P}decoder.conv_in.weight`, 1, why),
    channels, layersPerBlock,
    midAttention: h.has(`${P}encoder.mid.attn_1.q.weight`) || h.has(`${P}decoder.mid.attn_1.q.weight`),
    quantConv: h.has(`${P}quant_conv.weight`),
    postQuantConv: h.has(`${P}post_quant_conv.weight`),
  };
}

/** `prefixes`: SDXL's (conditioner.embedders.*), which keep every layer (SDXL reads hidden_states[-2] itself). */
function inferText(h: Header, layout: TextEncoderLayout, layersOpt: number | undefined, prefixes?: { clip: string; openclip: string }): TextArch {
  const why = 'the text encoder configuration';
  const clipPrefix = prefixes?.clip ?? CLIP_PREFIX;
  if (layout === 'openclip') {
    const P = prefixes?.openclip ?? OPEN_CLIP_PREFIX;
    const [vocab, hidden] = h.shape(`${P}token_embedding.weight`, why) as [number, number];
    const stored = h.indices(new RegExp(`^${esc(P)}transformer\\.resblocks\\.(\\d+)\\.`)).length;
    const layers = layersOpt ?? (prefixes ? stored : stored - 1);
    if (layers < 1 || layers > stored) throw new InputError(`textLayers ${layers}: the OpenCLIP text encoder of ${h.path} has ${stored} resblocks`);
    return {
      layout, legacyClip: false, hidden, vocab, layers, storedLayers: stored,
      intermediate: h.dim(`${P}transformer.resblocks.0.mlp.c_fc.weight`, 0, why),
      maxPositions: h.dim(`${P}positional_embedding`, 0, why),
    };
  }
  // transformers' CLIPTextModel; very old exports lack the `text_model.` level.
  const legacyClip = !h.has(`${clipPrefix}text_model.embeddings.token_embedding.weight`) && h.has(`${clipPrefix}embeddings.token_embedding.weight`);
  const root = legacyClip ? clipPrefix : `${clipPrefix}text_model.`;
  const [vocab, hidden] = h.shape(`${root}embeddings.token_embedding.weight`, why) as [number, number];
  const stored = h.indices(new RegExp(`^${esc(root)}encoder\\.layers\\.(\\d+)\\.`)).length;
  const layers = layersOpt ?? stored;
  if (layers < 1 || layers > stored) throw new InputError(`textLayers ${layers}: the CLIP text encoder of ${h.path} has ${stored} layers`);
  return {
    layout, legacyClip, hidden, vocab, layers, storedLayers: stored,
    intermediate: h.dim(`${root}encoder.layers.0.mlp.fc1.weight`, 0, why),
    maxPositions: h.dim(`${root}embeddings.position_embedding.weight`, 0, why),
  };
}

// ---------------------------------------------------------------------------------------------------
// Diffusers keys each architecture needs

function unetKeys(a: UNetArch): string[] {
  const keys: string[] = [];
  const wb = (p: string): void => { keys.push(`${p}.weight`, `${p}.bias`); };
  const resnet = (p: string, inC: number, outC: number): void => {
    for (const n of ['norm1', 'conv1', 'time_emb_proj', 'norm2', 'conv2']) wb(`${p}.${n}`);
    if (inC !== outC) wb(`${p}.conv_shortcut`);
  };
  const transformer = (p: string, depth: number): void => {
    for (const n of ['norm', 'proj_in', 'proj_out']) wb(`${p}.${n}`);
    for (let t = 0; t < depth; t++) {
      const tb = `${p}.transformer_blocks.${t}`;
      for (const n of ['norm1', 'norm2', 'norm3', 'ff.net.0.proj', 'ff.net.2']) wb(`${tb}.${n}`);
      for (const attn of ['attn1', 'attn2']) {
        for (const n of ['to_q', 'to_k', 'to_v']) keys.push(`${tb}.${attn}.${n}.weight`);
        wb(`${tb}.${attn}.to_out.0`);
      }
    }
  };
  for (const n of ['time_embedding.linear_1', 'time_embedding.linear_2', 'conv_in', 'conv_norm_out', 'conv_out']) wb(n);
  if (a.addInputDim !== undefined) { wb('add_embedding.linear_1'); wb('add_embedding.linear_2'); }
  if (a.condProj) keys.push('time_embedding.cond_proj.weight'); // nn.Linear(bias=False)
  const n = a.channels.length;
  let ch = a.channels[0]!;
  const skips = [ch];
  for (let b = 0; b < n; b++) {
    const out = a.channels[b]!;
    for (let j = 0; j < a.layersPerBlock; j++) {
      resnet(`down_blocks.${b}.resnets.${j}`, ch, out);
      ch = out;
      if (a.downAttention[b]) transformer(`down_blocks.${b}.attentions.${j}`, a.depth[b]!);
      skips.push(ch);
    }
    if (b < n - 1) { wb(`down_blocks.${b}.downsamplers.0.conv`); skips.push(ch); }
  }
  resnet('mid_block.resnets.0', ch, ch);
  transformer('mid_block.attentions.0', a.depth[n - 1]!);
  resnet('mid_block.resnets.1', ch, ch);
  for (let u = 0; u < n; u++) {
    const out = a.channels[n - 1 - u]!;
    for (let j = 0; j <= a.layersPerBlock; j++) {
      const skip = skips.pop()!;
      resnet(`up_blocks.${u}.resnets.${j}`, ch + skip, out);
      ch = out;
      if (a.upAttention[u]) transformer(`up_blocks.${u}.attentions.${j}`, a.depth[n - 1 - u]!);
    }
    if (u < n - 1) wb(`up_blocks.${u}.upsamplers.0.conv`);
  }
  return keys;
}

function vaeKeys(a: VaeArch): string[] {
  const keys: string[] = [];
  const wb = (p: string): void => { keys.push(`${p}.weight`, `${p}.bias`); };
  const resnet = (p: string, inC: number, outC: number): void => {
    for (const n of ['norm1', 'conv1', 'norm2', 'conv2']) wb(`${p}.${n}`);
    if (inC !== outC) wb(`${p}.conv_shortcut`);
  };
  const mid = (p: string, c: number): void => {
    resnet(`${p}.mid_block.resnets.0`, c, c);
    if (a.midAttention) for (const n of ['group_norm', 'to_q', 'to_k', 'to_v', 'to_out.0']) wb(`${p}.mid_block.attentions.0.${n}`);
    resnet(`${p}.mid_block.resnets.1`, c, c);
  };
  const n = a.channels.length;
  wb('encoder.conv_in');
  let ch = a.channels[0]!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < a.layersPerBlock; j++) { resnet(`encoder.down_blocks.${i}.resnets.${j}`, ch, a.channels[i]!); ch = a.channels[i]!; }
    if (i < n - 1) wb(`encoder.down_blocks.${i}.downsamplers.0.conv`);
  }
  mid('encoder', ch);
  wb('encoder.conv_norm_out');
  wb('encoder.conv_out');
  if (a.quantConv) wb('quant_conv');
  if (a.postQuantConv) wb('post_quant_conv');
  wb('decoder.conv_in');
  ch = a.channels[n - 1]!;
  mid('decoder', ch);
  for (let i = 0; i < n; i++) {
    const out = a.channels[n - 1 - i]!;
    for (let j = 0; j <= a.layersPerBlock; j++) { resnet(`decoder.up_blocks.${i}.resnets.${j}`, ch, out); ch = out; }
    if (i < n - 1) wb(`decoder.up_blocks.${i}.upsamplers.0.conv`);
  }
  wb('decoder.conv_norm_out');
  wb('decoder.conv_out');
  return keys;
}

function textKeys(a: TextArch, projection = false): string[] {
  const keys = [...(projection ? ['text_projection.weight'] : []),'text_model.embeddings.token_embedding.weight', 'text_model.embeddings.position_embedding.weight', 'text_model.final_layer_norm.weight', 'text_model.final_layer_norm.bias'];
  for (let i = 0; i < a.layers; i++) {
    for (const n of ['layer_norm1', 'layer_norm2', 'self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.out_proj', 'mlp.fc1', 'mlp.fc2']) {
      keys.push(`text_model.encoder.layers.${i}.${n}.weight`, `text_model.encoder.layers.${i}.${n}.bias`);
    }
  }
  return keys;
}

// ---------------------------------------------------------------------------------------------------
// The TensorSource

interface Entry {
  readonly stored: string;
  /** diffusers shape */
  readonly shape: readonly number[];
  /** Rows [begin, end) of the stored tensor (a q/k/v third of a fused in_proj). */
  readonly rows?: readonly [number, number];
  /** Stored as the transpose (OpenCLIP text_projection). */
  readonly transpose?: boolean;
}

/** Positioned reads of part of a tensor (its own descriptor, opened on first use). */
class RowReader {
  private fd: number | undefined;
  constructor(readonly path: string) {}

  read(info: TensorInfo, begin: number, end: number): Float32Array {
    const n = numel(info.shape);
    const perRow = numel(info.shape.slice(1));
    const bytesPer = n === 0 ? 0 : info.byteLength / n;
    const start = info.offset + begin * perRow * bytesPer;
    const len = (end - begin) * perRow * bytesPer;
    this.fd ??= fs.openSync(this.path, 'r');
    const buf = Buffer.allocUnsafe(len);
    let done = 0;
    while (done < len) {
      const got = fs.readSync(this.fd, buf, done, len - done, start + done);
      if (got === 0) throw new FileFormatError(this.path, `file ended while reading tensor data at byte ${start + done}`, info.name);
      done += got;
    }
    return toFloat32(buf, info.dtype, this.path, info.name);
  }

  close(): void {
    if (this.fd !== undefined) { fs.closeSync(this.fd); this.fd = undefined; }
  }
}

/** One component of an original-layout file under diffusers names. Reads are lazy and not kept, as SafetensorsSource's. */
export class OriginalLayoutSource implements TensorSource {
  constructor(readonly origin: string, private readonly file: TensorFile, private readonly entries: ReadonlyMap<string, Entry>, private readonly rowReader: RowReader) {}

  keys(): Iterable<string> { return this.entries.keys(); }
  has(key: string): boolean { return this.entries.has(key); }
  shape(key: string): readonly number[] { return this.entry(key).shape; }

  /** The stored (original-layout) name of a diffusers key. */
  storedName(key: string): string { return this.entry(key).stored; }

  read(key: string): Tensor {
    const e = this.entry(key);
    const info = this.file.info(e.stored) as TensorInfo & { contiguous?: boolean };
    // A strided (pickled, non-contiguous) tensor has no row span on disk: its reader gathers the rows.
    const data = !e.rows ? this.file.readFloat32(e.stored).data
      : info.contiguous === false ? this.file.readRows(e.stored, e.rows[0], e.rows[1] - e.rows[0]).data : this.rowReader.read(info, e.rows[0], e.rows[1]);
    return e.transpose ? transpose2D({ shape: [e.shape[1]!, e.shape[0]!], data }) : { shape: [...e.shape], data };
  }

  private entry(key: string): Entry {
    const e = this.entries.get(key);
    if (!e) throw new FileFormatError(this.origin, 'missing weight', key);
    return e;
  }
}

function buildEntries(h: Header, component: OriginalComponentName, keys: readonly string[], ctx: OriginalLayoutContext, rename?: (key: string) => string): Map<string, Entry> {
  const entries = new Map<string, Entry>();
  for (const key of keys) {
    const ref = originalKeyOf(component, key, ctx);
    if (!ref) throw new Error(`original-checkpoint: no original name for ${component} key ${key}`);
    const stored = rename ? rename(ref.key) : ref.key;
    const info = h.file.tensors.get(stored);
    if (!info) throw new FileFormatError(h.path, `missing tensor: the ${component} needs it (diffusers name ${key})`, stored);
    let shape: readonly number[] = info.shape;
    let rows: [number, number] | undefined;
    if (ref.qkvPart !== undefined) {
      const total = info.shape[0] ?? 0;
      if (total % 3 !== 0 || total === 0) throw new FileFormatError(h.path, `fused q/k/v has shape [${info.shape.join(', ')}]; its first dimension should be 3 x hidden size`, stored);
      const third = total / 3;
      rows = [ref.qkvPart * third, (ref.qkvPart + 1) * third];
      shape = [third, ...info.shape.slice(1)];
    } else if (ref.conv1x1) {
      if (info.shape.length < 2 || info.shape.slice(2).some((d) => d !== 1)) {
        throw new FileFormatError(h.path, `expected a 1x1 conv or linear weight [C, C(, 1, 1)], got [${info.shape.join(', ')}]`, stored);
      }
      shape = info.shape.slice(0, 2);
    } else if (ref.transpose) {
      if (info.shape.length !== 2) throw new FileFormatError(h.path, `expected a 2-D projection matrix, got [${info.shape.join(', ')}]`, stored);
      shape = [info.shape[1]!, info.shape[0]!];
    }
    entries.set(key, { stored, shape, ...(rows ? { rows } : {}), ...(ref.transpose ? { transpose: true } : {}) });
  }
  return entries;
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
