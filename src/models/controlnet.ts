/**
 * diffusers ControlNetModel: a copy of the UNet's encoder (time embedding, down blocks, mid block) whose
 * input is the latent plus an embedding of the condition image, and zero-initialised 1x1 convs that turn
 * each skip feature and the mid-block output into residuals for the UNet (scaled by conditioning_scale).
 */
import { Config } from '../io/config.js';
import { FileFormatError } from '../errors.js';
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, silu } from '../graph/nn.js';
import { unetConfig, unetDownPath, unetMidBlock, unetTimeEmbedding, type UNet2DConditionConfig, type UNetInputs } from './unet2d-condition.js';

export interface ControlNetConfig extends UNet2DConditionConfig {
  conditioningChannels: number;
  conditioningEmbeddingOutChannels: number[];
  globalPoolConditions: boolean;
}

export function controlNetConfig(c: Config): ControlNetConfig {
  const base = unetConfig(c, { encoderOnly: true });
  const order = c.string('controlnet_conditioning_channel_order', 'rgb');
  if (order !== 'rgb') throw new FileFormatError(c.file, `only "rgb" is supported, got ${JSON.stringify(order)}`, 'controlnet_conditioning_channel_order');
  const emb = c.raw.conditioning_embedding_out_channels;
  const embChannels = Array.isArray(emb) ? c.ints('conditioning_embedding_out_channels', emb.length) : [16, 32, 96, 256];
  return {
    ...base,
    conditioningChannels: c.int('conditioning_channels', 3),
    conditioningEmbeddingOutChannels: embChannels,
    globalPoolConditions: c.bool('global_pool_conditions', false),
  };
}

/** ControlNetConditioningEmbedding: conv_in, SiLU, [conv, SiLU, strided conv, SiLU] per level, conv_out. */
export function conditioningEmbedding(cond: Value, vb: WeightsView, cfg: ControlNetConfig): Value {
  const ch = cfg.conditioningEmbeddingOutChannels;
  let x = silu(conv2d(cond, vb.pp('conv_in'), cfg.conditioningChannels, ch[0]!, 3, { padding: 1 }));
  for (let i = 0; i < ch.length - 1; i++) {
    x = silu(conv2d(x, vb.pp('blocks').pp(2 * i), ch[i]!, ch[i]!, 3, { padding: 1 }));
    x = silu(conv2d(x, vb.pp('blocks').pp(2 * i + 1), ch[i]!, ch[i + 1]!, 3, { padding: 1, stride: 2 }));
  }
  return conv2d(x, vb.pp('conv_out'), ch[ch.length - 1]!, cfg.blockOutChannels[0]!, 3, { padding: 1 });
}

export interface ControlNetResiduals {
  /** One per UNet skip connection, in down_block_res_samples order. */
  readonly down: Value[];
  readonly mid: Value;
}

/**
 * Residuals for the UNet. `cond` is the control image in [0, 1], [B, 3, H, W]; `scale` broadcasts over
 * the residuals ([B, 1, 1, 1] gives each row its own conditioning scale; zero switches a row off).
 */
export function controlNetModel(inp: UNetInputs & { cond: Value; scale: Value }, vb: WeightsView, cfg: ControlNetConfig, tap?: (name: string, v: Value) => void): ControlNetResiduals {
  const temb = unetTimeEmbedding(inp, vb, cfg);
  const ch0 = cfg.blockOutChannels[0]!;
  const convIn = conv2d(inp.sample, vb.pp('conv_in'), cfg.inChannels, ch0, 3, { padding: 1 });
  const condEmb = conditioningEmbedding(inp.cond, vb.pp('controlnet_cond_embedding'), cfg);
  tap?.('cond_embedding', condEmb);
  tap?.('conv_in', convIn);
  const down = unetDownPath(op.add(convIn, condEmb), temb, inp.encoderHiddenStates, vb, cfg);
  const mid = unetMidBlock(down.h, temb, inp.encoderHiddenStates, vb.pp('mid_block'), cfg);
  tap?.('mid_block', mid);
  const pool = (v: Value): Value => (cfg.globalPoolConditions ? op.reduceMean(v, [2, 3]) : v);
  const residuals = down.skips.map((s, k) => {
    tap?.(`raw_down_block_res_samples.${k}`, s);
    return op.mul(pool(conv2d(s, vb.pp('controlnet_down_blocks').pp(k), s.dim(1), s.dim(1), 1)), inp.scale);
  });
  const c = mid.dim(1);
  return { down: residuals, mid: op.mul(pool(conv2d(mid, vb.pp('controlnet_mid_block'), c, c, 1)), inp.scale) };
}
