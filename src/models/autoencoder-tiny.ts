/**
 * diffusers AutoencoderTiny (TAESD, Bohan Ou's "Tiny AutoEncoder for Stable Diffusion"): plain conv
 * stacks with no normalisation and no latent distribution. The encoder output IS the latent.
 *
 *   block(x)   = relu(conv3(act(conv2(act(conv1(x))))) + skip(x))   skip = 1x1 conv (no bias) when channels differ
 *   encoder(x) = conv_out(stages((x + 1) / 2))        stage i: conv (stride 2, no bias, after the first) + blocks
 *   decoder(z) = 2 * conv_out(stages(act(conv_in(tanh(z / 3) * 3)))) - 1
 *                                                     stage i: blocks + [nearest x2 upsample] + conv (bias only on the last)
 *
 * Layers are numbered as diffusers' nn.Sequential (`encoder.layers.i`, `decoder.layers.i`), which is
 * also how the weights are keyed. Latents are scaled by `scaling_factor` outside (in the pipelines).
 */
import { FileFormatError } from '../errors.js';
import type { Config } from '../io/config.js';
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { activation, conv2d, type Activation } from '../graph/nn.js';

export interface AutoencoderTinyConfig {
  inChannels: number;
  outChannels: number;
  latentChannels: number;
  encoderBlockOutChannels: number[];
  decoderBlockOutChannels: number[];
  numEncoderBlocks: number[];
  numDecoderBlocks: number[];
  actFn: Activation;
  upsamplingScalingFactor: number;
  /** scale_latents / unscale_latents: latents map to [0, 1] as z / (2 * magnitude) + shift. */
  latentMagnitude: number;
  latentShift: number;
  scalingFactor: number;
  shiftFactor: number;
}

/** diffusers' get_activation names (swish = silu); mish is not supported here. */
const ACTIVATIONS = { relu: 'relu', silu: 'silu', swish: 'silu', gelu: 'gelu' } as const satisfies Record<string, Activation>;

/** A non-empty list of positive ints of any length (the stage count comes from it). */
function intList(c: Config, key: string, fallback: number[]): number[] {
  const v = c.has(key) ? c.raw[key] : fallback;
  if (!Array.isArray(v) || v.length === 0 || !v.every((x) => typeof x === 'number' && Number.isInteger(x) && x > 0)) {
    throw new FileFormatError(c.file, `expected a non-empty list of positive integers, got ${JSON.stringify(v)}`, key);
  }
  return v as number[];
}

export function autoencoderTinyConfig(c: Config): AutoencoderTinyConfig {
  const cls = c.raw._class_name;
  if (cls !== undefined && cls !== 'AutoencoderTiny') throw new FileFormatError(c.file, `expected an AutoencoderTiny (TAESD) config, got ${JSON.stringify(cls)}`, '_class_name');
  const enc = intList(c, 'encoder_block_out_channels', [64, 64, 64, 64]);
  const dec = intList(c, 'decoder_block_out_channels', [64, 64, 64, 64]);
  const up = c.number('upsampling_scaling_factor', 2);
  if (!Number.isInteger(up) || up < 1) throw new FileFormatError(c.file, `expected a positive integer, got ${up}`, 'upsampling_scaling_factor');
  c.oneOf('upsample_fn', ['nearest'], 'nearest');
  return {
    inChannels: c.int('in_channels', 3),
    outChannels: c.int('out_channels', 3),
    latentChannels: c.int('latent_channels', 4),
    encoderBlockOutChannels: enc,
    decoderBlockOutChannels: dec,
    numEncoderBlocks: c.ints('num_encoder_blocks', enc.length, [1, 3, 3, 3]),
    numDecoderBlocks: c.ints('num_decoder_blocks', dec.length, [3, 3, 3, 1]),
    actFn: ACTIVATIONS[c.oneOf('act_fn', Object.keys(ACTIVATIONS) as (keyof typeof ACTIVATIONS)[], 'relu')],
    upsamplingScalingFactor: up,
    latentMagnitude: c.number('latent_magnitude', 3),
    latentShift: c.number('latent_shift', 0.5),
    scalingFactor: c.number('scaling_factor', 1.0),
    shiftFactor: c.has('shift_factor') ? c.number('shift_factor') : 0,
  };
}

/** Image-to-latent factor: diffusers registers block_out_channels = decoder_block_out_channels, factor 2^(n-1). */
export function tinyVaeScaleFactor(cfg: AutoencoderTinyConfig): number {
  return cfg.upsamplingScalingFactor ** (cfg.decoderBlockOutChannels.length - 1);
}

/** Intermediate outputs by module path (`encoder.layers.3`, inside blocks `decoder.layers.2.conv.3`), for tests. */
export type LayerTap = (name: string, v: Value) => void;

/** AutoencoderTinyBlock: relu(conv(x) + skip(x)); conv = conv3x3-act-conv3x3-act-conv3x3. */
function tinyBlock(x: Value, vb: WeightsView, inC: number, outC: number, act: Activation, tap?: LayerTap): Value {
  let h = activation(act, conv2d(x, vb.pp('conv.0'), inC, outC, 3, { padding: 1 }));
  tap?.(`${vb.prefix}.conv.1`, h);
  h = activation(act, conv2d(h, vb.pp('conv.2'), outC, outC, 3, { padding: 1 }));
  tap?.(`${vb.prefix}.conv.3`, h);
  h = conv2d(h, vb.pp('conv.4'), outC, outC, 3, { padding: 1 });
  const skip = inC === outC ? x : conv2d(x, vb.pp('skip'), inC, outC, 1, { bias: false });
  return op.relu(op.add(h, skip)); // `fuse` is always ReLU, whatever act_fn is
}

/** EncoderTiny on images in [-1, 1]: the latents (unscaled). */
export function tinyEncode(image: Value, vb: WeightsView, cfg: AutoencoderTinyConfig, tap?: LayerTap): Value {
  const lv = vb.pp('encoder.layers');
  const ch = cfg.encoderBlockOutChannels;
  let x = op.div(op.add(image, 1), 2); // TAESD works on [0, 1] images
  let n = 0, c = cfg.inChannels;
  const layer = (f: (v: WeightsView) => Value): void => { x = f(lv.pp(n)); tap?.(`encoder.layers.${n}`, x); n++; };
  for (let i = 0; i < ch.length; i++) {
    const out = ch[i]!;
    layer((v) => (i === 0 ? conv2d(x, v, c, out, 3, { padding: 1 }) : conv2d(x, v, c, out, 3, { padding: 1, stride: 2, bias: false })));
    c = out;
    for (let j = 0; j < cfg.numEncoderBlocks[i]!; j++) layer((v) => tinyBlock(x, v, out, out, cfg.actFn, tap));
  }
  layer((v) => conv2d(x, v, c, cfg.latentChannels, 3, { padding: 1 }));
  return x;
}

/** DecoderTiny on latents (already divided by scaling_factor): images in [-1, 1] (unclamped). */
export function tinyDecode(z: Value, vb: WeightsView, cfg: AutoencoderTinyConfig, tap?: LayerTap): Value {
  const lv = vb.pp('decoder.layers');
  const ch = cfg.decoderBlockOutChannels;
  let x = op.mul(op.tanh(op.div(z, 3)), 3); // soft clamp of the latents to (-3, 3)
  let n = 0;
  const layer = (f: (v: WeightsView) => Value): void => { x = f(lv.pp(n)); tap?.(`decoder.layers.${n}`, x); n++; };
  layer((v) => conv2d(x, v, cfg.latentChannels, ch[0]!, 3, { padding: 1 }));
  layer(() => activation(cfg.actFn, x));
  let c = ch[0]!;
  for (let i = 0; i < ch.length; i++) {
    const last = i === ch.length - 1;
    const out = ch[i]!;
    for (let j = 0; j < cfg.numDecoderBlocks[i]!; j++) { const inC = c; layer((v) => tinyBlock(x, v, inC, out, cfg.actFn, tap)); c = out; }
    if (!last) layer(() => op.upsampleNearest(x, x.dim(2) * cfg.upsamplingScalingFactor, x.dim(3) * cfg.upsamplingScalingFactor));
    layer((v) => conv2d(x, v, c, last ? cfg.outChannels : c, 3, { padding: 1, bias: last }));
  }
  return op.sub(op.mul(x, 2), 1); // [0, 1] -> [-1, 1]
}

/**
 * scale_latents then the 8-bit round trip of AutoencoderTiny.forward:
 * q = byte(round(clamp(z / (2 m) + shift, 0, 1) * 255)) (float32 steps, round half to even as torch).
 */
export function quantizeLatents(latents: Float32Array, cfg: AutoencoderTinyConfig): Uint8Array {
  const f = Math.fround, twoM = 2 * cfg.latentMagnitude;
  const q = new Uint8Array(latents.length);
  for (let i = 0; i < latents.length; i++) {
    let v = f(f(latents[i]! / twoM) + cfg.latentShift);
    v = f((v < 0 ? 0 : v > 1 ? 1 : v) * 255);
    const r = Math.round(v);
    q[i] = r - v === 0.5 && r % 2 !== 0 ? r - 1 : r;
  }
  return q;
}

/** unscale_latents(q / 255) = (q / 255 - shift) * 2 m, in float32. */
export function dequantizeLatents(q: Uint8Array, cfg: AutoencoderTinyConfig): Float32Array {
  const f = Math.fround;
  return Float32Array.from(q, (v) => f(f(f(v / 255) - cfg.latentShift) * (2 * cfg.latentMagnitude)));
}
