/**
 * The diffusers -> original key map of single-file Stable Diffusion 1.x / 2.x / XL checkpoints (CompVis /
 * Stability layout; see original-checkpoint.ts for the prefixes' meaning): `originalKeyOf` is the well-known
 * table of diffusers' single_file_utils.py, written once, in this direction. The reader enumerates the diffusers
 * keys the inferred architecture needs (original-architecture.ts) and looks each up under its original name, so
 * a missing tensor is reported with the file and the ORIGINAL key name when the checkpoint is opened, not later
 * in the middle of a graph build. `toOriginalLayout` uses the same table to write diffusers state dicts back
 * in the original layout.
 */
import { InputError } from '../errors.js';
import { concatRows, type Tensor } from '../tensor.js';

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
export const COND_PROJ_ORIGINAL = ['time_embedding.cond_proj.', 'time_embed.0.cond_proj.'] as const;

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

/** The transpose of a 2-D tensor (OpenCLIP stores text_projection as x @ P, diffusers as a Linear weight). */
export function transpose2D(t: Tensor): Tensor {
  const [r, c] = t.shape as [number, number];
  const out = new Float32Array(r * c);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = t.data[i * c + j]!;
  return { shape: [c, r], data: out };
}
