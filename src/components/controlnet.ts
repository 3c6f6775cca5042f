/**
 * ControlNets of a run: each a compiled part of the UNet graph (one graph computes the ControlNet
 * residuals and the UNet), with the condition image and a per-row conditioning scale as inputs, so
 * rows can be switched off (reference rows, the unconditional branch) without another graph.
 */
import fs from 'node:fs';
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import type { Graph, Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import type { Feed } from '../graph/session.js';
import { Config } from '../io/config.js';
import type { RGBImage } from '../io/image.js';
import { VaeImageProcessor } from '../io/vae-image-processor.js';
import { openComponentWeights, WeightsView } from '../io/weights.js';
import { isOriginalControlNetFile, openOriginalControlNet } from '../io/original-controlnet.js';
import { controlNetConfig, controlNetModel, type ControlNetConfig } from '../models/controlnet.js';
import type { UNetHooks } from '../models/hooks.js';
import type { DenoiserInputs } from '../models/unet2d-condition.js';
import type { Tensor } from '../tensor.js';
import type { UNetVariant } from './unet.js';

export class ControlNet {
  constructor(readonly config: ControlNetConfig, readonly weights: WeightsView, readonly id: string) {}

  static open(dir: string): ControlNet {
    if (!fs.existsSync(dir)) throw new InputError(`ControlNet path not found: ${dir}`);
    // A single file in the original (lllyasviel) layout, .pth or .safetensors: keys mapped, config inferred.
    if (isOriginalControlNetFile(dir)) {
      const { config, weights } = openOriginalControlNet(dir);
      return new ControlNet(controlNetConfig(config), new WeightsView(weights), path.resolve(dir));
    }
    const folder = fs.statSync(dir).isDirectory() ? dir : path.dirname(dir);
    const cfg = controlNetConfig(Config.read(path.join(folder, 'config.json')));
    return new ControlNet(cfg, new WeightsView(openComponentWeights(folder)), folder);
  }
}

/** One ControlNet with its condition image (a decoded image, or a [1, 3, H, W] tensor in [0, 1]) and scale. */
export interface ControlInput {
  readonly net: ControlNet;
  readonly image: RGBImage | Tensor;
  readonly scale: number;
}

/** A control whose image is a tensor at the output size. */
export interface PreparedControl extends ControlInput {
  readonly image: Tensor;
}

/** Bring every condition image to the output size as diffusers does. */
export function prepareControls(controls: readonly ControlInput[], width: number, height: number, factor: number): PreparedControl[] {
  return controls.map((c) => {
    if (!Number.isFinite(c.scale)) throw new InputError(`--control-scale must be a number, got ${c.scale}`);
    if ('width' in c.image) return { ...c, image: preprocessControlImage(c.image, width, height, factor) };
    const t = c.image;
    if (t.shape.join(',') !== `1,3,${height},${width}`) throw new InputError(`control image tensor has shape [${t.shape.join(', ')}] but this run needs [1, 3, ${height}, ${width}]`);
    return { ...c, image: t };
  });
}

/** diffusers' control_image_processor: resize to the output size (PIL lanczos), RGB, [0, 1], no normalisation. */
export function preprocessControlImage(image: RGBImage, width: number, height: number, factor: number): Tensor {
  return new VaeImageProcessor({ vae_scale_factor: factor, do_normalize: false }).preprocess(image, { width, height });
}

const condName = (j: number): string => `controlnet_${j}_cond`;
const scaleName = (j: number): string => `controlnet_${j}_scale`;

/** The UNet variant adding every ControlNet's residuals to the skips and the mid block. */
export function controlNetVariant(controls: readonly PreparedControl[]): UNetVariant | undefined {
  if (controls.length === 0) return undefined;
  return {
    key: `controlnet[${controls.map((c) => c.net.id).join(',')}]`,
    hooks(g: Graph, batch: number, inputs: DenoiserInputs): UNetHooks {
      const ehs = inputs.encoderHiddenStates;
      if (!ehs) throw new InputError('ControlNets need a text-conditioned UNet (Stable Diffusion), not a pixel-space UNet2DModel');
      for (const c of controls) checkFamily(c.net, inputs, ehs);
      const residuals = controls.map((c, j) => {
        const [, , h, w] = c.image.shape as [number, number, number, number];
        const cond = g.input(condName(j), [batch, 3, h, w]);
        const scale = g.input(scaleName(j), [batch, 1, 1, 1]);
        return g.scope(`controlnet_${j}`, () => controlNetModel({ ...inputs, encoderHiddenStates: ehs, cond, scale }, c.net.weights, c.net.config));
      });
      const fit = (j: number, what: string, r: Value, s: Value): void => {
        if (r.shape.join(',') !== s.shape.join(',')) {
          throw new FileFormatError(controls[j]!.net.id, `ControlNet does not fit this UNet: its ${what} is [${r.shape.join(', ')}] but the UNet's is [${s.shape.join(', ')}]`);
        }
      };
      return {
        skip: (k, s) => residuals.reduce((acc, r, j) => {
          const res = r.down[k];
          if (!res) throw new FileFormatError(controls[j]!.net.id, `ControlNet does not fit this UNet: it has ${r.down.length} skip residuals, the UNet needs index ${k}`);
          fit(j, `residual ${k}`, res, s);
          return op.add(acc, res);
        }, s),
        midBlock: (x) => residuals.reduce((acc, r, j) => { fit(j, 'mid-block residual', r.mid, x); return op.add(acc, r.mid); }, x),
      };
    },
  };
}

/**
 * A ControlNet is trained beside one model family: refuse one whose latent channels, text width or added
 * conditioning differ from the UNet's before its graph is built (where the mismatch would be a shape error).
 */
function checkFamily(net: ControlNet, inputs: DenoiserInputs, ehs: Value): void {
  const family = (sdxl: boolean): string => (sdxl ? '"text_time" (SDXL)' : 'null (SD 1.x/2.x)');
  const differ = (key: string, its: string | number, unets: string | number): FileFormatError =>
    new FileFormatError(net.id, `this ControlNet is for another model family: its ${key} is ${its}, this UNet's is ${unets}`, key);
  const cfg = net.config;
  if (Boolean(cfg.addition) !== Boolean(inputs.addedCond)) throw differ('addition_embed_type', family(Boolean(cfg.addition)), family(Boolean(inputs.addedCond)));
  if (cfg.inChannels !== inputs.sample.dim(1)) throw differ('in_channels', cfg.inChannels, inputs.sample.dim(1));
  if (cfg.crossAttentionDim !== ehs.dim(2)) throw differ('cross_attention_dim', cfg.crossAttentionDim, ehs.dim(2));
}

/** Feeds for one UNet call: each ControlNet's image on every row, and its scale per row (`rowScale[j][row]`, multiplied by the control's own scale). */
export function controlNetFeeds(controls: readonly PreparedControl[], rowScale: (j: number, row: number) => number, batch: number): Record<string, Feed> {
  const feeds: Record<string, Feed> = {};
  controls.forEach((c, j) => {
    const per = c.image.data.length;
    const img = new Float32Array(batch * per);
    for (let r = 0; r < batch; r++) img.set(c.image.data, r * per);
    feeds[condName(j)] = { shape: [batch, ...c.image.shape.slice(1)], data: img };
    feeds[scaleName(j)] = { shape: [batch, 1, 1, 1], data: Float32Array.from({ length: batch }, (_, r) => c.scale * rowScale(j, r)) };
  });
  return feeds;
}
