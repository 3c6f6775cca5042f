/**
 * diffusers AutoencoderKL: Encoder (DownEncoderBlock2D x n, mid block with one attention) -> quant_conv ->
 * diagonal Gaussian (mean, logvar clamped to [-30, 20]); Decoder: post_quant_conv -> mid block ->
 * UpDecoderBlock2D x n -> conv_out. Latents are scaled by `scaling_factor` outside (in the pipelines).
 */
import { Config } from '../io/config.js';
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, groupNorm, silu } from '../graph/nn.js';
import { spatialSelfAttention } from './attention.js';
import { downsample2D, resnetBlock2D, upsample2D } from './resnet.js';

export interface AutoencoderKLConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  blockOutChannels: number[];
  layersPerBlock: number;
  normNumGroups: number;
  scalingFactor: number;
  shiftFactor: number;
  useQuantConv: boolean;
  usePostQuantConv: boolean;
  midBlockAddAttention: boolean;
}

export function autoencoderConfig(c: Config): AutoencoderKLConfig {
  const down = c.stringsOf('down_block_types', ['DownEncoderBlock2D'], ['DownEncoderBlock2D']);
  c.stringsOf('up_block_types', ['UpDecoderBlock2D'], ['UpDecoderBlock2D']);
  return {
    inChannels: c.int('in_channels', 3),
    outChannels: c.int('out_channels', 3),
    latentChannels: c.int('latent_channels', 4),
    blockOutChannels: c.ints('block_out_channels', down.length),
    layersPerBlock: c.int('layers_per_block', 1),
    normNumGroups: c.int('norm_num_groups', 32),
    scalingFactor: c.number('scaling_factor', 0.18215),
    shiftFactor: c.has('shift_factor') ? c.number('shift_factor') : 0,
    useQuantConv: c.bool('use_quant_conv', true),
    usePostQuantConv: c.bool('use_post_quant_conv', true),
    midBlockAddAttention: c.bool('mid_block_add_attention', true),
  };
}

/** Spatial downsampling factor between image and latent (2^(blocks-1)). */
export function vaeScaleFactor(cfg: AutoencoderKLConfig): number {
  return 2 ** (cfg.blockOutChannels.length - 1);
}

const EPS = 1e-6;

/** UNetMidBlock2D without time embedding: resnet, single-head self-attention over pixels, resnet. */
function midBlock(x: Value, vb: WeightsView, c: number, cfg: AutoencoderKLConfig, path: string): Value {
  const spec = { inChannels: c, outChannels: c, groups: cfg.normNumGroups, eps: EPS, tembChannels: 0 };
  let h = resnetBlock2D(x, null, vb.pp('resnets.0'), spec);
  if (cfg.midBlockAddAttention) h = spatialSelfAttention(h, vb.pp('attentions.0'), { path: `${path}.attentions.0`, groups: cfg.normNumGroups, eps: EPS, heads: 1 });
  return resnetBlock2D(h, null, vb.pp('resnets.1'), spec);
}

export interface EncoderOutputs {
  /** quant_conv output (2 * latent channels) */
  moments: Value;
  mean: Value;
  /** clamped to [-30, 20] */
  logvar: Value;
}

export function vaeEncode(image: Value, vb: WeightsView, cfg: AutoencoderKLConfig): EncoderOutputs {
  const g = image.graph;
  const ev = vb.pp('encoder');
  const ch = cfg.blockOutChannels;
  let x = conv2d(image, ev.pp('conv_in'), cfg.inChannels, ch[0]!, 3, { padding: 1 });
  for (let i = 0; i < ch.length; i++) {
    const bv = ev.pp('down_blocks').pp(i);
    x = g.scope(`encoder.down_blocks.${i}`, () => {
      let h = x;
      for (let j = 0; j < cfg.layersPerBlock; j++) {
        h = resnetBlock2D(h, null, bv.pp('resnets').pp(j), { inChannels: h.dim(1), outChannels: ch[i]!, groups: cfg.normNumGroups, eps: EPS, tembChannels: 0 });
      }
      return i < ch.length - 1 ? downsample2D(h, bv.pp('downsamplers.0'), ch[i]!, 0) : h;
    });
  }
  const last = ch[ch.length - 1]!;
  x = g.scope('encoder.mid_block', () => midBlock(x, ev.pp('mid_block'), last, cfg, 'encoder.mid_block'));
  x = conv2d(silu(groupNorm(x, ev.pp('conv_norm_out'), cfg.normNumGroups, EPS)), ev.pp('conv_out'), last, 2 * cfg.latentChannels, 3, { padding: 1 });
  const moments = cfg.useQuantConv ? conv2d(x, vb.pp('quant_conv'), 2 * cfg.latentChannels, 2 * cfg.latentChannels, 1) : x;
  const [mean, rawLogvar] = op.chunk(moments, 2, 1) as [Value, Value];
  const logvar = g.node('Clip', [rawLogvar, op.scalar(rawLogvar, -30), op.scalar(rawLogvar, 20)], [{ shape: rawLogvar.shape, dtype: 'float32' }])[0]!;
  return { moments, mean, logvar };
}

/** Decode latents (already divided by scaling_factor) to images in [-1, 1] (not clamped). */
export function vaeDecode(z: Value, vb: WeightsView, cfg: AutoencoderKLConfig): Value {
  const g = z.graph;
  const dv = vb.pp('decoder');
  const ch = [...cfg.blockOutChannels].reverse();
  let x = cfg.usePostQuantConv ? conv2d(z, vb.pp('post_quant_conv'), cfg.latentChannels, cfg.latentChannels, 1) : z;
  x = conv2d(x, dv.pp('conv_in'), cfg.latentChannels, ch[0]!, 3, { padding: 1 });
  x = g.scope('decoder.mid_block', () => midBlock(x, dv.pp('mid_block'), ch[0]!, cfg, 'decoder.mid_block'));
  for (let i = 0; i < ch.length; i++) {
    const bv = dv.pp('up_blocks').pp(i);
    x = g.scope(`decoder.up_blocks.${i}`, () => {
      let h = x;
      for (let j = 0; j <= cfg.layersPerBlock; j++) {
        h = resnetBlock2D(h, null, bv.pp('resnets').pp(j), { inChannels: h.dim(1), outChannels: ch[i]!, groups: cfg.normNumGroups, eps: EPS, tembChannels: 0 });
      }
      return i < ch.length - 1 ? upsample2D(h, bv.pp('upsamplers.0'), ch[i]!) : h;
    });
  }
  const first = cfg.blockOutChannels[0]!;
  return conv2d(silu(groupNorm(x, dv.pp('conv_norm_out'), cfg.normNumGroups, EPS)), dv.pp('conv_out'), first, cfg.outChannels, 3, { padding: 1 });
}
