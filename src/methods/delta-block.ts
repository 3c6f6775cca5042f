/**
 * Asyrp's attribute network ("DeltaBlock", kwonminki/Asyrp_official): dh = conv_out(SiLU(GroupNorm(
 * conv_in(h) + temb_proj(SiLU(temb))))) with 1x1 convs, predicting an h-space direction per timestep.
 * Weight names: conv_in / temb_proj / norm / conv_out (the official code's conv1 / temb_proj / norm2 /
 * conv2 are accepted too), optionally under a common prefix.
 */
import { FileFormatError } from '../errors.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { conv2d, groupNorm, linear, silu } from '../graph/nn.js';
import { SafetensorsFile } from '../io/safetensors.js';
import { SafetensorsSource, WeightsView } from '../io/weights.js';

export interface DeltaBlockConfig {
  channels: number;
  tembChannels: number;
  groups: number;
  eps: number;
}

/** GroupNorm groups: 32, or the largest count below it that divides the channels (as the reference does). */
export function deltaBlockGroups(channels: number): number {
  let g = Math.min(32, channels);
  while (channels % g !== 0) g--;
  return g;
}

export function deltaBlock(h: Value, temb: Value, vb: WeightsView, cfg: DeltaBlockConfig): Value {
  const c = cfg.channels;
  let x = conv2d(h, vb.pp('conv_in'), c, c, 1);
  const t = linear(silu(temb), vb.pp('temb_proj'), cfg.tembChannels, c);
  x = op.add(x, op.reshape(t, [t.dim(0), c, 1, 1]));
  return conv2d(silu(groupNorm(x, vb.pp('norm'), cfg.groups, cfg.eps)), vb.pp('conv_out'), c, c, 1);
}

const OFFICIAL_NAMES: Record<string, string> = { conv1: 'conv_in', norm2: 'norm', conv2: 'conv_out' };

/** Load a DeltaBlock file and check it fits a UNet whose h-space has `channels` and whose time embedding has `tembChannels`. */
export function loadDeltaBlock(file: string, channels: number, tembChannels: number): { weights: WeightsView; config: DeltaBlockConfig } {
  const f = SafetensorsFile.open(file);
  const keys = [...f.tensors.keys()];
  const anchor = keys.find((k) => /(^|\.)(conv_in|conv1)\.weight$/.test(k));
  if (!anchor) throw new FileFormatError(file, `not an attribute (DeltaBlock) file: no conv_in.weight or conv1.weight among ${keys.length} tensors (${keys.slice(0, 4).join(', ')}${keys.length > 4 ? ', ...' : ''})`);
  const prefix = anchor.slice(0, anchor.lastIndexOf(anchor.includes('conv_in') ? 'conv_in' : 'conv1'));
  const source = new SafetensorsSource(file, [f], (k) => {
    if (!k.startsWith(prefix)) return undefined;
    const rest = k.slice(prefix.length);
    const [head, ...tail] = rest.split('.');
    return [OFFICIAL_NAMES[head!] ?? head, ...tail].join('.');
  });
  const vb = new WeightsView(source);
  const w = vb.shape('conv_in.weight');
  if (w[0] !== channels || w[1] !== channels) {
    throw new FileFormatError(file, `attribute network has ${w[1]} input channels but this UNet's h-space has ${channels}`, `${prefix}conv_in.weight`);
  }
  const t = vb.shape('temb_proj.weight');
  if (t[1] !== tembChannels) {
    throw new FileFormatError(file, `attribute network expects a ${t[1]}-dim time embedding but this UNet's is ${tembChannels}-dim`, `${prefix}temb_proj.weight`);
  }
  return { weights: vb, config: { channels, tembChannels, groups: deltaBlockGroups(channels), eps: 1e-6 } };
}
