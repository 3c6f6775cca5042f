/**
 * CLIP image features as a differentiable function of generated images (PNO, Asyrp's directional loss):
 * images in [-1, 1] -> (x/2 + 0.5).clamp(0, 1) -> bilinear resize to the tower's size -> CLIP mean/std
 * normalisation -> image features. The tower is a CLIPModel's vision side or a checkpoint's image_encoder.
 */
import type { CLIPModel } from '../components/clip-model.js';
import { clipImageFeatures } from '../components/clip-model.js';
import type { ImageEncoder } from '../components/image-encoder.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { bilinearResize } from '../graph/nn.js';
import { clipVisionModel } from '../models/clip.js';

export interface ImageFeatureTower {
  readonly id: string;
  readonly imageSize: number;
  readonly mean: readonly number[];
  readonly std: readonly number[];
  /** pixel_values [B, 3, S, S] -> features [B, D] */
  features(pixelValues: Value): Value;
}

const OPENAI_MEAN = [0.48145466, 0.4578275, 0.40821073];
const OPENAI_STD = [0.26862954, 0.26130258, 0.27577711];

export function towerOfCLIPModel(m: CLIPModel): ImageFeatureTower {
  return { id: `clip-model:${m.id}`, imageSize: m.config.vision.imageSize, mean: OPENAI_MEAN, std: OPENAI_STD, features: (px) => clipImageFeatures(px, m.weights, m.config) };
}

export function towerOfImageEncoder(e: ImageEncoder): ImageFeatureTower {
  return {
    id: `image-encoder:${e.id}`, imageSize: e.config.imageSize, mean: e.processor.config.image_mean, std: e.processor.config.image_std,
    features: (px) => clipVisionModel(px, e.weights, e.config, e.projection).imageEmbeds,
  };
}

/** Images in [-1, 1] [B, 3, H, W] -> CLIP pixel_values. */
export function clipPixels(x: Value, tower: ImageFeatureTower): Value {
  const g = x.graph;
  const x01 = op.clip(op.add(op.div(x, 2), 0.5), 0, 1);
  const r = bilinearResize(x01, tower.imageSize, tower.imageSize);
  const mean = op.constFloat(g, [1, 3, 1, 1], Float32Array.from(tower.mean), 'clip_mean');
  const std = op.constFloat(g, [1, 3, 1, 1], Float32Array.from(tower.std), 'clip_std');
  return op.div(op.sub(r, mean), std);
}

/** 1 - cos(a, b) per row, [B]. */
export function cosineDistance(a: Value, b: Value): Value {
  const dot = op.reduceSum(op.mul(a, b), [-1], false);
  const na = op.sqrt(op.reduceSum(op.mul(a, a), [-1], false)), nb = op.sqrt(op.reduceSum(op.mul(b, b), [-1], false));
  return op.rsub(1, op.div(dot, op.mul(na, nb)));
}
