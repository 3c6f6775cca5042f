/** Image -> CLIP image features: CLIPImageProcessor + CLIPVisionModelWithProjection of a checkpoint. */
import { Graph } from '../graph/ir.js';
import { compile } from '../graph/session.js';
import type { CLIPImageProcessor } from '../io/clip-image-processor.js';
import type { RGBImage } from '../io/image.js';
import type { WeightsView } from '../io/weights.js';
import { clipVisionModel, type CLIPVisionConfig } from '../models/clip.js';
import type { Tensor } from '../tensor.js';

export interface ImageEmbeddings {
  /** [B, projection_dim] */
  readonly imageEmbeds: Tensor;
  /** [B, tokens, hidden] (before post_layernorm and projection) */
  readonly lastHiddenState: Tensor;
  /** [B, tokens, hidden]: hidden_states[-2] */
  readonly penultimateHiddenState: Tensor;
}

export class ImageEncoder {
  constructor(
    readonly processor: CLIPImageProcessor,
    readonly config: CLIPVisionConfig,
    readonly weights: WeightsView,
    /** Where visual_projection lives (null: no projection, image_embeds = pooled output). */
    readonly projection: WeightsView | null,
    readonly id: string,
  ) {}

  async encode(images: readonly RGBImage[]): Promise<ImageEmbeddings> {
    return this.encodePixels(this.processor.preprocess(images));
  }

  async encodePixels(pixelValues: Tensor): Promise<ImageEmbeddings> {
    const session = await compile(`clip-vision:${this.id}:${pixelValues.shape.join('x')}`, () => {
      const g = new Graph('clip_vision');
      const out = clipVisionModel(g.input('pixel_values', pixelValues.shape), this.weights, this.config, this.projection);
      g.output('image_embeds', out.imageEmbeds);
      g.output('last_hidden_state', out.lastHiddenState);
      g.output('penultimate_hidden_state', out.hiddenStates[out.hiddenStates.length - 2]!);
      return g;
    });
    const r = await session.run({ pixel_values: pixelValues });
    return { imageEmbeds: r.image_embeds!, lastHiddenState: r.last_hidden_state!, penultimateHiddenState: r.penultimate_hidden_state! };
  }
}
