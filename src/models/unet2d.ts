/**
 * diffusers UNet2DModel: the unconditional pixel-space DDPM UNet (google/ddpm-*, InjectFusion's and
 * Asyrp's models). Down blocks DownBlock2D / AttnDownBlock2D (pixel self-attention after each resnet),
 * UNetMidBlock2D with attention (its output is the h-space), UpBlock2D / AttnUpBlock2D. Same hook
 * points as UNet2DConditionModel: the mid-block output and every skip connection.
 */
import { Config } from '../io/config.js';
import { FileFormatError } from '../errors.js';
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, groupNorm, silu } from '../graph/nn.js';
import { spatialSelfAttention } from './attention.js';
import { timestepEmbedding, timestepFeatures } from './embeddings.js';
import type { UNetHooks } from './hooks.js';
import { resnetBlock2D } from './resnet.js';
import { downBlocks, upBlocks, type SkeletonSpec } from './unet-skeleton.js';

export type PixelDownBlockType = 'DownBlock2D' | 'AttnDownBlock2D';
export type PixelUpBlockType = 'UpBlock2D' | 'AttnUpBlock2D';

export interface UNet2DConfig {
  inChannels: number;
  outChannels: number;
  blockOutChannels: number[];
  downBlockTypes: PixelDownBlockType[];
  upBlockTypes: PixelUpBlockType[];
  layersPerBlock: number;
  /** Channels per attention head (null: one head over all channels). */
  attentionHeadDim: number | null;
  normNumGroups: number;
  attnNormNumGroups: number;
  normEps: number;
  flipSinToCos: boolean;
  freqShift: number;
  downsamplePadding: number;
  addAttention: boolean;
  midBlockScaleFactor: number;
  centerInputSample: boolean;
  sampleSize: number;
}

export function unet2DConfig(c: Config): UNet2DConfig {
  const down = c.stringsOf<PixelDownBlockType>('down_block_types', ['DownBlock2D', 'AttnDownBlock2D']);
  const up = c.stringsOf<PixelUpBlockType>('up_block_types', ['UpBlock2D', 'AttnUpBlock2D']);
  if (up.length !== down.length) throw new FileFormatError(c.file, `expected ${down.length} up blocks, got ${up.length}`, 'up_block_types');
  for (const key of ['class_embed_type', 'num_class_embeds']) if (c.has(key)) throw new FileFormatError(c.file, `class-conditional UNet2DModels are not supported (${key} is set)`, key);
  if (c.string('time_embedding_type', 'positional') !== 'positional') throw new FileFormatError(c.file, 'only "positional" time embeddings are supported', 'time_embedding_type');
  for (const key of ['downsample_type', 'upsample_type']) if (c.string(key, 'conv') !== 'conv') throw new FileFormatError(c.file, 'only "conv" is supported', key);
  const groups = c.int('norm_num_groups', 32);
  return {
    inChannels: c.int('in_channels', 3),
    outChannels: c.int('out_channels', 3),
    blockOutChannels: c.ints('block_out_channels', down.length),
    downBlockTypes: down,
    upBlockTypes: up,
    layersPerBlock: c.int('layers_per_block', 2),
    attentionHeadDim: c.has('attention_head_dim') ? c.int('attention_head_dim') : null,
    normNumGroups: groups,
    attnNormNumGroups: c.has('attn_norm_num_groups') ? c.int('attn_norm_num_groups') : groups,
    normEps: c.number('norm_eps', 1e-5),
    flipSinToCos: c.bool('flip_sin_to_cos', true),
    freqShift: c.int('freq_shift', 0),
    downsamplePadding: c.int('downsample_padding', 1),
    addAttention: c.bool('add_attention', true),
    midBlockScaleFactor: c.number('mid_block_scale_factor', 1),
    centerInputSample: c.bool('center_input_sample', false),
    sampleSize: c.int('sample_size', 256),
  };
}

export function unet2DModel(sample: Value, timestep: Value, vb: WeightsView, cfg: UNet2DConfig, hooks?: UNetHooks): Value {
  const g = sample.graph;
  const tap = (name: string, v: Value): Value => { hooks?.tap?.(name, v); return v; };
  const ch0 = cfg.blockOutChannels[0]!;
  const tembDim = ch0 * 4;
  const tproj = tap('time_proj', timestepFeatures(timestep, ch0, cfg.flipSinToCos, cfg.freqShift));
  const temb = tap('time_embedding', timestepEmbedding(tproj, vb.pp('time_embedding'), ch0, tembDim));
  const res = (inC: number, outC: number, scale = 1) => ({ inChannels: inC, outChannels: outC, groups: cfg.normNumGroups, eps: cfg.normEps, tembChannels: tembDim, outputScaleFactor: scale });
  const attn = (h: Value, v: WeightsView, path: string): Value => spatialSelfAttention(h, v, { path, groups: cfg.attnNormNumGroups, eps: cfg.normEps, heads: cfg.attentionHeadDim ? h.dim(1) / cfg.attentionHeadDim : 1 }, hooks);

  const layer = (withAttention: boolean) => (h: Value, outC: number, bv: WeightsView, path: string, j: number): Value => {
    const r = resnetBlock2D(h, temb, bv.pp('resnets').pp(j), res(h.dim(1), outC));
    return withAttention ? attn(r, bv.pp('attentions').pp(j), `${path}.attentions.${j}`) : r;
  };
  const skeleton: SkeletonSpec = {
    blockOutChannels: cfg.blockOutChannels,
    layersPerBlock: cfg.layersPerBlock,
    downsamplePadding: cfg.downsamplePadding,
    downLayer: (i, j, h, outC, bv, path) => layer(cfg.downBlockTypes[i] === 'AttnDownBlock2D')(h, outC, bv, path, j),
    upLayer: (i, j, h, outC, bv, path) => layer(cfg.upBlockTypes[i] === 'AttnUpBlock2D')(h, outC, bv, path, j),
  };

  const input = cfg.centerInputSample ? op.sub(op.mul(sample, 2), 1) : sample;
  const down = downBlocks(conv2d(input, vb.pp('conv_in'), cfg.inChannels, ch0, 3, { padding: 1 }), vb, skeleton, hooks);
  const c = cfg.blockOutChannels[cfg.blockOutChannels.length - 1]!;
  let x = g.scope('mid_block', () => {
    let h = resnetBlock2D(down.h, temb, vb.pp('mid_block.resnets.0'), res(c, c, cfg.midBlockScaleFactor));
    if (cfg.addAttention) h = attn(h, vb.pp('mid_block.attentions.0'), 'mid_block.attentions.0');
    return resnetBlock2D(h, temb, vb.pp('mid_block.resnets.1'), res(c, c, cfg.midBlockScaleFactor));
  });
  tap('mid_block', x);
  if (hooks?.midBlock) x = tap('mid_block.edited', hooks.midBlock(x, temb));
  x = upBlocks(x, down.skips, vb, skeleton, hooks);
  return conv2d(silu(groupNorm(x, vb.pp('conv_norm_out'), cfg.normNumGroups, cfg.normEps)), vb.pp('conv_out'), ch0, cfg.outChannels, 3, { padding: 1 });
}
