/**
 * Asyrp's attribute network ("DeltaBlock", kwonminki/Asyrp_official): dh = conv_out(SiLU(GroupNorm(
 * conv_in(h) + temb_proj(SiLU(temb))))) with 1x1 convs, predicting an h-space direction per timestep.
 * Weight names: conv_in / temb_proj / norm / conv_out (the official code's conv1 / temb_proj / norm2 /
 * conv2 are accepted too), optionally under a common prefix.
 */
import { FileFormatError } from '../errors.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { param, silu } from '../graph/nn.js';
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

export const DELTA_PARAMS = ['conv_in.weight', 'conv_in.bias', 'temb_proj.weight', 'temb_proj.bias', 'norm.weight', 'norm.bias', 'conv_out.weight', 'conv_out.bias'] as const;
export type DeltaParamName = (typeof DELTA_PARAMS)[number];

export function deltaParamShapes(cfg: DeltaBlockConfig): Record<DeltaParamName, number[]> {
  const c = cfg.channels;
  return {
    'conv_in.weight': [c, c, 1, 1], 'conv_in.bias': [c], 'temb_proj.weight': [c, cfg.tembChannels], 'temb_proj.bias': [c],
    'norm.weight': [c], 'norm.bias': [c], 'conv_out.weight': [c, c, 1, 1], 'conv_out.bias': [c],
  };
}

/** dh from parameters given as graph values (constants for inference, inputs for training). */
export function deltaBlockOf(h: Value, temb: Value, p: Record<DeltaParamName, Value>, cfg: DeltaBlockConfig): Value {
  const c = cfg.channels;
  let x = op.conv2d(h, p['conv_in.weight'], p['conv_in.bias']);
  const t = op.add(op.matmul(silu(temb), op.transpose(p['temb_proj.weight'], [1, 0])), p['temb_proj.bias']);
  x = op.add(x, op.reshape(t, [t.dim(0), c, 1, 1]));
  const [n] = x.shape as [number];
  const g = x.graph;
  const grouped = op.reshape(x, [n, cfg.groups, -1]);
  const normed = op.reshape(op.instanceNormalization(grouped, op.constFloat(g, [cfg.groups], new Float32Array(cfg.groups).fill(1)), op.constFloat(g, [cfg.groups], new Float32Array(cfg.groups)), cfg.eps), x.shape);
  const affine = op.add(op.mul(normed, op.reshape(p['norm.weight'], [c, 1, 1])), op.reshape(p['norm.bias'], [c, 1, 1]));
  return op.conv2d(silu(affine), p['conv_out.weight'], p['conv_out.bias']);
}

export function deltaBlock(h: Value, temb: Value, vb: WeightsView, cfg: DeltaBlockConfig): Value {
  const shapes = deltaParamShapes(cfg);
  const p = Object.fromEntries(DELTA_PARAMS.map((n) => [n, param(h.graph, vb, n, shapes[n])])) as Record<DeltaParamName, Value>;
  return deltaBlockOf(h, temb, p, cfg);
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
