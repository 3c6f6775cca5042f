/**
 * SDXL's `text_time` added conditioning (diffusers UNet2DConditionModel with addition_embed_type
 * "text_time"): each of the six micro-conditioning numbers (original size, crop top-left, target size;
 * heights first) gets the sinusoidal add_time_proj, the flattened features are appended to the pooled
 * text embedding, and add_embedding (a TimestepEmbedding MLP) maps that to the time-embedding width.
 * The result is added to the timestep embedding.
 */
import { FileFormatError } from '../errors.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import type { WeightsView } from '../io/weights.js';
import { timestepEmbedding, timestepFeatures } from './embeddings.js';
import type { UNetHooks } from './hooks.js';

export interface TextTimeConfig {
  /** addition_time_embed_dim: sinusoidal channels per time id. */
  readonly timeEmbedDim: number;
  /** projection_class_embeddings_input_dim = pooled width + 6 x timeEmbedDim. */
  readonly inputDim: number;
}

/** Number of micro-conditioning values: original (h, w), crop (top, left), target (h, w). */
export const TIME_IDS = 6;

/** The pooled-text width this added conditioning expects. */
export function pooledWidth(cfg: TextTimeConfig, timeIds = TIME_IDS): number {
  return cfg.inputDim - cfg.timeEmbedDim * timeIds;
}

/** aug_emb = add_embedding(concat(text_embeds [B, P], add_time_proj(time_ids [B, 6]).reshape(B, -1))). */
export function textTimeEmbedding(textEmbeds: Value, timeIds: Value, vb: WeightsView, cfg: TextTimeConfig, o: { outDim: number; flipSinToCos: boolean; freqShift: number }, hooks?: UNetHooks): Value {
  const [b, n] = timeIds.shape as [number, number];
  const width = textEmbeds.dim(1) + n * cfg.timeEmbedDim;
  if (width !== cfg.inputDim) {
    throw new FileFormatError('unet/config.json', `added conditioning needs ${cfg.inputDim} values (projection_class_embeddings_input_dim) but pooled text ${textEmbeds.dim(1)} + ${n} time ids x ${cfg.timeEmbedDim} give ${width}`, 'projection_class_embeddings_input_dim');
  }
  const features = timestepFeatures(op.reshape(timeIds, [b * n]), cfg.timeEmbedDim, o.flipSinToCos, o.freqShift);
  hooks?.tap?.('add_time_proj', features);
  const addEmbeds = op.concat([textEmbeds, op.reshape(features, [b, n * cfg.timeEmbedDim])], 1);
  hooks?.tap?.('add_embeds', addEmbeds);
  const aug = timestepEmbedding(addEmbeds, vb.pp('add_embedding'), cfg.inputDim, o.outDim);
  hooks?.tap?.('aug_emb', aug);
  return aug;
}

/**
 * diffusers' get_guidance_scale_embedding (LCM pipelines): w' = (guidance - 1) x 1000, then
 * [sin(w' f_i), cos(w' f_i)] with f_i = exp(-i ln(10000) / (half - 1)), zero-padded to an odd width.
 * Computed in float32 steps as torch does.
 */
export function guidanceScaleEmbedding(guidance: number, dim: number): Float32Array {
  const half = Math.floor(dim / 2);
  const out = new Float32Array(dim);
  const w = Math.fround(Math.fround(guidance - 1) * 1000);
  const step = Math.fround(Math.fround(Math.log(10000)) / (half - 1));
  for (let i = 0; i < half; i++) {
    const f = Math.fround(Math.exp(Math.fround(i * -step)));
    const a = Math.fround(w * f);
    out[i] = Math.sin(a);
    out[half + i] = Math.cos(a);
  }
  return out;
}
