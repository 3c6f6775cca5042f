/**
 * diffusers UNet2DConditionModel (SD 1.x / 2.x / XL): conv_in, down blocks collecting skip connections,
 * a cross-attention mid block (its output is the h-space), up blocks consuming the skips in reverse,
 * conv_norm_out -> SiLU -> conv_out. Hook points: every attention, the mid-block output, every skip.
 */
import { Config } from '../io/config.js';
import { FileFormatError } from '../errors.js';
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import { conv2d, silu } from '../graph/nn.js';
import { hookedGroupNorm } from './group-norm-hook.js';
import * as op from '../graph/ops.js';
import { BatchRows } from './batch-rows.js';
import type { UNetHooks } from './hooks.js';
import { resnetBlock2D } from './resnet.js';
import { downBlocks, upBlocks, type SkeletonSpec } from './unet-skeleton.js';
import { timestepEmbedding, timestepFeatures } from './embeddings.js';
import { textTimeEmbedding, type TextTimeConfig } from './added-embedding.js';
import { transformer2D } from './transformer-2d.js';

export type DownBlockType = 'CrossAttnDownBlock2D' | 'DownBlock2D';
export type UpBlockType = 'CrossAttnUpBlock2D' | 'UpBlock2D';

export interface UNet2DConditionConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: DownBlockType[];
  upBlockTypes: UpBlockType[];
  midBlockType: 'UNetMidBlock2DCrossAttn' | null;
  layersPerBlock: number;
  /** Heads per down block (diffusers' legacy attention_head_dim when num_attention_heads is absent). */
  numAttentionHeads: number[];
  transformerLayersPerBlock: number[];
  crossAttentionDim: number;
  useLinearProjection: boolean;
  normNumGroups: number;
  normEps: number;
  flipSinToCos: boolean;
  freqShift: number;
  downsamplePadding: number;
  sampleSize: number;
  /** SDXL's `text_time` added conditioning (pooled text + micro-conditioning time ids); null for SD 1.x/2.x. */
  addition: TextTimeConfig | null;
  /** Width of the guidance-scale embedding LCM-distilled UNets add to the timestep (time_cond_proj_dim); null when absent. */
  timeCondProjDim: number | null;
}

/** `encoderOnly`: a ControlNet config (no up blocks). */
export function unetConfig(c: Config, opts: { encoderOnly?: boolean } = {}): UNet2DConditionConfig {
  const downBlockTypes = c.stringsOf<DownBlockType>('down_block_types', ['CrossAttnDownBlock2D', 'DownBlock2D']);
  const upBlockTypes = opts.encoderOnly ? [] : c.stringsOf<UpBlockType>('up_block_types', ['CrossAttnUpBlock2D', 'UpBlock2D']);
  const n = downBlockTypes.length;
  if (!opts.encoderOnly && upBlockTypes.length !== n) throw new FileFormatError(c.file, `expected ${n} up blocks (as many as down blocks), got ${upBlockTypes.length}`, 'up_block_types');
  const midBlockType = c.has('mid_block_type') ? c.oneOf('mid_block_type', ['UNetMidBlock2DCrossAttn']) : 'UNetMidBlock2DCrossAttn';
  // diffusers' legacy naming: `attention_head_dim` holds the number of heads unless num_attention_heads is set.
  const heads = c.optionalInts('num_attention_heads', n) ?? c.ints('attention_head_dim', n, 8);
  for (const key of ['class_embed_type', 'encoder_hid_dim_type', 'reverse_transformer_layers_per_block']) {
    if (c.has(key)) throw new FileFormatError(c.file, `${JSON.stringify(c.raw[key])} is not supported (SD 1.x/2.x/XL UNets have null here)`, key);
  }
  const addition = c.has('addition_embed_type')
    ? (c.oneOf('addition_embed_type', ['text_time']), { timeEmbedDim: c.int('addition_time_embed_dim'), inputDim: c.int('projection_class_embeddings_input_dim') })
    : null;
  if (c.has('resnet_time_scale_shift') && c.string('resnet_time_scale_shift') !== 'default') throw new FileFormatError(c.file, 'only "default" is supported', 'resnet_time_scale_shift');
  const cross = c.raw.cross_attention_dim;
  return {
    inChannels: c.int('in_channels', 4),
    outChannels: c.int('out_channels', 4),
    blockOutChannels: c.ints('block_out_channels', n),
    downBlockTypes,
    upBlockTypes,
    midBlockType,
    layersPerBlock: c.int('layers_per_block', 2),
    numAttentionHeads: heads,
    transformerLayersPerBlock: c.ints('transformer_layers_per_block', n, 1),
    crossAttentionDim: Array.isArray(cross) ? c.ints('cross_attention_dim', n)[0]! : c.int('cross_attention_dim', 1280),
    useLinearProjection: c.bool('use_linear_projection', false),
    normNumGroups: c.int('norm_num_groups', 32),
    normEps: c.number('norm_eps', 1e-5),
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.int('freq_shift', 0),
    downsamplePadding: c.int('downsample_padding', 1),
    sampleSize: c.int('sample_size', 64),
    addition,
    timeCondProjDim: c.has('time_cond_proj_dim') ? c.int('time_cond_proj_dim') : null,
  };
}

export interface UNetInputs {
  /** [B, C, h, w] */
  sample: Value;
  /** [B] float timesteps */
  timestep: Value;
  /** [B, L, cross_attention_dim] */
  encoderHiddenStates: Value;
  /** SDXL's added conditioning: pooled text [B, P] and time ids [B, 6] (required when the config has `addition`). */
  addedCond?: { textEmbeds: Value; timeIds: Value };
  /** [B, time_cond_proj_dim] guidance-scale embedding (required when the config has `timeCondProjDim`). */
  timestepCond?: Value;
}

/** What a variant's hooks see of the denoiser's inputs (no text for unconditional UNets). */
export type DenoiserInputs = Omit<UNetInputs, 'encoderHiddenStates'> & { encoderHiddenStates?: Value };

/**
 * The embedding every resnet receives: time_embedding(time_proj(t) [+ cond_proj(timestep_cond)]) plus,
 * for SDXL, add_embedding(concat(text_embeds, add_time_proj(time_ids))).
 */
export function unetTimeEmbedding(inp: Pick<UNetInputs, 'timestep' | 'addedCond' | 'timestepCond'>, vb: WeightsView, cfg: UNet2DConditionConfig, hooks?: UNetHooks): Value {
  const ch0 = cfg.blockOutChannels[0]!;
  const tproj = timestepFeatures(inp.timestep, ch0, cfg.flipSinToCos, cfg.freqShift);
  hooks?.tap?.('time_proj', tproj);
  if (cfg.timeCondProjDim !== null && !inp.timestepCond) throw new Error('UNet: this UNet (time_cond_proj_dim) needs a guidance-scale embedding input');
  const cond = cfg.timeCondProjDim !== null ? { value: inp.timestepCond!, dim: cfg.timeCondProjDim } : undefined;
  let temb = timestepEmbedding(tproj, vb.pp('time_embedding'), ch0, ch0 * 4, cond);
  hooks?.tap?.('time_embedding', temb);
  if (cfg.addition) {
    if (!inp.addedCond) throw new Error('UNet: this UNet (addition_embed_type text_time) needs text_embeds and time_ids');
    temb = op.add(temb, textTimeEmbedding(inp.addedCond.textEmbeds, inp.addedCond.timeIds, vb, cfg.addition, { outDim: ch0 * 4, flipSinToCos: cfg.flipSinToCos, freqShift: cfg.freqShift }, hooks));
    hooks?.tap?.('emb', temb);
  }
  return temb;
}

function resnetSpec(cfg: UNet2DConditionConfig, inC: number, outC: number) {
  return { inChannels: inC, outChannels: outC, groups: cfg.normNumGroups, eps: cfg.normEps, tembChannels: cfg.blockOutChannels[0]! * 4 };
}

function transformerSpec(cfg: UNet2DConditionConfig, path: string, channels: number, heads: number, layers: number) {
  return {
    path, channels, heads, dimHead: channels / heads, crossAttentionDim: cfg.crossAttentionDim,
    layers, groups: cfg.normNumGroups, useLinearProjection: cfg.useLinearProjection,
  };
}

/** The skeleton's layers: ResnetBlock2D, then a Transformer2DModel in CrossAttn blocks; `rows` (up path): rows may be dropped. */
function skeleton(temb: Value, ctx: Value, cfg: UNet2DConditionConfig, hooks?: UNetHooks, rows?: BatchRows): SkeletonSpec {
  const n = cfg.downBlockTypes.length;
  const layer = (cross: boolean, heads: number, layers: number) => (h: Value, outC: number, bv: WeightsView, path: string, j: number): Value => {
    const r = resnetBlock2D(h, rows ? rows.of(temb) : temb, bv.pp('resnets').pp(j), resnetSpec(cfg, h.dim(1), outC), hooks, `${path}.resnets.${j}`);
    return cross ? transformer2D(r, ctx, bv.pp('attentions').pp(j), transformerSpec(cfg, `${path}.attentions.${j}`, outC, heads, layers), hooks, rows) : r;
  };
  return {
    blockOutChannels: cfg.blockOutChannels,
    layersPerBlock: cfg.layersPerBlock,
    downsamplePadding: cfg.downsamplePadding,
    downLayer: (i, j, h, outC, bv, path) => layer(cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D', cfg.numAttentionHeads[i]!, cfg.transformerLayersPerBlock[i]!)(h, outC, bv, path, j),
    upLayer: (i, j, h, outC, bv, path) => layer(cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D', cfg.numAttentionHeads[n - 1 - i]!, cfg.transformerLayersPerBlock[n - 1 - i]!)(h, outC, bv, path, j),
  };
}

/**
 * The down blocks from `x` (conv_in output, plus a ControlNet's condition embedding there): returns the
 * last hidden state and every skip connection in diffusers' down_block_res_samples order (x first).
 */
export function unetDownPath(x: Value, temb: Value, ctx: Value, vb: WeightsView, cfg: UNet2DConditionConfig, hooks?: UNetHooks): { h: Value; skips: Value[] } {
  return downBlocks(x, vb, skeleton(temb, ctx, cfg, hooks), hooks);
}

/** UNetMidBlock2DCrossAttn: resnet, transformer, resnet. */
export function unetMidBlock(x: Value, temb: Value, ctx: Value, vb: WeightsView, cfg: UNet2DConditionConfig, hooks?: UNetHooks): Value {
  const n = cfg.downBlockTypes.length;
  const c = cfg.blockOutChannels[n - 1]!;
  return x.graph.scope('mid_block', () => {
    let h = resnetBlock2D(x, temb, vb.pp('resnets.0'), resnetSpec(cfg, c, c), hooks, 'mid_block.resnets.0');
    h = transformer2D(h, ctx, vb.pp('attentions.0'), transformerSpec(cfg, 'mid_block.attentions.0', c, cfg.numAttentionHeads[n - 1]!, cfg.transformerLayersPerBlock[n - 1]!), hooks);
    return resnetBlock2D(h, temb, vb.pp('resnets.1'), resnetSpec(cfg, c, c), hooks, 'mid_block.resnets.1');
  });
}

/** Every self-attention (attn1) path of the UNet, in the order the graph is built (down, mid, up). */
export function selfAttentionPaths(cfg: UNet2DConditionConfig): string[] {
  const n = cfg.downBlockTypes.length;
  const paths: string[] = [];
  const add = (prefix: string, layers: number): void => { for (let t = 0; t < layers; t++) paths.push(`${prefix}.transformer_blocks.${t}.attn1`); };
  cfg.downBlockTypes.forEach((type, i) => {
    if (type === 'CrossAttnDownBlock2D') for (let j = 0; j < cfg.layersPerBlock; j++) add(`down_blocks.${i}.attentions.${j}`, cfg.transformerLayersPerBlock[i]!);
  });
  if (cfg.midBlockType) add('mid_block.attentions.0', cfg.transformerLayersPerBlock[n - 1]!);
  cfg.upBlockTypes.forEach((type, i) => {
    if (type === 'CrossAttnUpBlock2D') for (let j = 0; j <= cfg.layersPerBlock; j++) add(`up_blocks.${i}.attentions.${j}`, cfg.transformerLayersPerBlock[n - 1 - i]!);
  });
  return paths;
}

export function unet2DConditionModel(inp: UNetInputs, vb: WeightsView, cfg: UNet2DConditionConfig, hooks?: UNetHooks): Value {
  const tap = (name: string, v: Value): Value => { hooks?.tap?.(name, v); return v; };
  const ch0 = cfg.blockOutChannels[0]!;
  const temb = unetTimeEmbedding(inp, vb, cfg, hooks);
  const ctx = inp.encoderHiddenStates;
  const down = unetDownPath(conv2d(inp.sample, vb.pp('conv_in'), cfg.inChannels, ch0, 3, { padding: 1 }), temb, ctx, vb, cfg, hooks);
  let x = down.h;
  if (cfg.midBlockType) {
    x = tap('mid_block', unetMidBlock(x, temb, ctx, vb.pp('mid_block'), cfg, hooks));
    if (hooks?.midBlock) x = tap('mid_block.edited', hooks.midBlock(x, temb));
  }
  // Rows the hooks drop part-way through the up path (UNetHooks.keepRows) come back as zeros.
  const rows = hooks?.keepRows ? new BatchRows(inp.sample.dim(0), hooks, selfAttentionPaths(cfg)) : undefined;
  x = upBlocks(x, down.skips, vb, skeleton(temb, ctx, cfg, hooks, rows), hooks, rows);
  const out = conv2d(silu(hookedGroupNorm(x, vb.pp('conv_norm_out'), cfg.normNumGroups, cfg.normEps, 'conv_norm_out', hooks)), vb.pp('conv_out'), ch0, cfg.outChannels, 3, { padding: 1 });
  return rows ? rows.restore(out) : out;
}
