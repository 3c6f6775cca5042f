/** diffusers ResnetBlock2D, Downsample2D and Upsample2D (shared by the UNets and the VAE). */
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, linear, silu } from '../graph/nn.js';
import { hookedGroupNorm } from './group-norm-hook.js';
import type { UNetHooks } from './hooks.js';

export interface ResnetSpec {
  readonly inChannels: number;
  readonly outChannels: number;
  readonly groups: number;
  readonly eps: number;
  /** Channels of the time embedding; 0 for none (VAE). */
  readonly tembChannels: number;
  readonly outputScaleFactor?: number;
}

/** h = conv2(silu(norm2(conv1(silu(norm1(x))) + proj(silu(temb))))); out = (shortcut(x) + h) / scale */
/** `hooks`/`path` (diffusers module path of the block): UNet hooks may replace its GroupNorms. */
export function resnetBlock2D(x: Value, temb: Value | null, vb: WeightsView, s: ResnetSpec, hooks?: UNetHooks, path = ''): Value {
  let h = conv2d(silu(hookedGroupNorm(x, vb.pp('norm1'), s.groups, s.eps, `${path}.norm1`, hooks)), vb.pp('conv1'), s.inChannels, s.outChannels, 3, { padding: 1 });
  if (temb && s.tembChannels > 0) {
    const t = linear(silu(temb), vb.pp('time_emb_proj'), s.tembChannels, s.outChannels);
    h = op.add(h, op.reshape(t, [t.dim(0), s.outChannels, 1, 1]));
  }
  h = conv2d(silu(hookedGroupNorm(h, vb.pp('norm2'), s.groups, s.eps, `${path}.norm2`, hooks)), vb.pp('conv2'), s.outChannels, s.outChannels, 3, { padding: 1 });
  const shortcut = s.inChannels !== s.outChannels || vb.has('conv_shortcut.weight')
    ? conv2d(x, vb.pp('conv_shortcut'), s.inChannels, s.outChannels, vb.shape('conv_shortcut.weight')[2]!, { padding: vb.shape('conv_shortcut.weight')[2] === 3 ? 1 : 0 })
    : x;
  const sum = op.add(shortcut, h);
  return s.outputScaleFactor && s.outputScaleFactor !== 1 ? op.div(sum, s.outputScaleFactor) : sum;
}

/** Strided 3x3 conv; padding 0 means diffusers' F.pad(0, 1, 0, 1) before the conv (the VAE encoder). */
export function downsample2D(x: Value, vb: WeightsView, channels: number, padding: number): Value {
  return conv2d(x, vb.pp('conv'), channels, channels, 3, { stride: 2, padding: padding === 0 ? [0, 0, 1, 1] : padding });
}

/** Nearest 2x (or to the skip's size) then a 3x3 conv. */
export function upsample2D(x: Value, vb: WeightsView, channels: number, size?: readonly [number, number]): Value {
  const [oh, ow] = size ?? [x.dim(2) * 2, x.dim(3) * 2];
  return conv2d(op.upsampleNearest(x, oh, ow), vb.pp('conv'), channels, channels, 3, { padding: 1 });
}
