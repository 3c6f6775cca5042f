/**
 * Prompts -> what the denoiser is conditioned on, for any model family: token embeddings
 * (encoder_hidden_states) and, for UNets with added conditioning (SDXL), the pooled text embedding and
 * the micro-conditioning time ids. Pipelines encode and pass Conditioning rows through without
 * knowing the family; the family is decided here, from the checkpoint's components:
 *
 * - one CLIPTextModel (SD 1.x / 2.x): final_layer_norm(hidden_states[-1 - clip_skip]), no pooled output;
 *   a missing prompt is encoded as "".
 * - two encoders (SDXL, diffusers StableDiffusionXLPipeline.encode_prompt): each encoder's raw
 *   hidden_states[-(clip_skip + 2)] (penultimate by default, no final layer norm) concatenated on the
 *   channel axis; pooled = text_embeds of the second (CLIPTextModelWithProjection); the second encoder
 *   reads prompt_2 (default: the prompt). A missing negative prompt gives all-zero embeddings and pooled
 *   when model_index.json sets force_zeros_for_empty_prompt; the empty string "" is always encoded.
 */
import { FileFormatError, InputError } from '../errors.js';
import { pooledWidth, TIME_IDS, type TextTimeConfig } from '../models/added-embedding.js';
import { concatRows, rows, type Tensor } from '../tensor.js';
import type { TextEncoder } from './text-encoder.js';
import type { AddedConditioning } from './unet.js';

/** SDXL micro-conditioning (diffusers original_size, crops_coords_top_left, target_size); sizes are [height, width]. */
export interface MicroConditioning {
  readonly originalSize: readonly [number, number];
  readonly cropTopLeft: readonly [number, number];
  readonly targetSize: readonly [number, number];
}

/** diffusers' defaults: original = target = the image size (height, width), crop (0, 0). */
export function defaultMicroConditioning(width: number, height: number, given: Partial<MicroConditioning> = {}): MicroConditioning {
  return {
    originalSize: given.originalSize ?? [height, width],
    cropTopLeft: given.cropTopLeft ?? [0, 0],
    targetSize: given.targetSize ?? [height, width],
  };
}

/** What one UNet call is conditioned on, one row per sample (spread it into UNet.run's call). */
export interface Conditioning {
  /** [B, L, D] */
  readonly encoderHiddenStates: Tensor;
  /** Present for UNets with added conditioning. */
  readonly addedCond?: AddedConditioning;
}

export function conditioningRows(c: Conditioning, i: number, j = i + 1): Conditioning {
  return {
    encoderHiddenStates: rows(c.encoderHiddenStates, i, j),
    ...(c.addedCond ? { addedCond: { textEmbeds: rows(c.addedCond.textEmbeds, i, j), timeIds: rows(c.addedCond.timeIds, i, j) } } : {}),
  };
}

export function concatConditioning(parts: readonly Conditioning[]): Conditioning {
  const added = parts.map((p) => p.addedCond);
  if (added.some((a) => a) && !added.every((a) => a)) throw new Error('concatConditioning: rows with and without added conditioning');
  return {
    encoderHiddenStates: concatRows(parts.map((p) => p.encoderHiddenStates)),
    ...(added[0] ? { addedCond: { textEmbeds: concatRows(added.map((a) => a!.textEmbeds)), timeIds: concatRows(added.map((a) => a!.timeIds)) } } : {}),
  };
}

export function repeatConditioning(c: Conditioning, k: number): Conditioning {
  return concatConditioning(Array<Conditioning>(k).fill(c));
}

/** Encoded prompts, one row each; `conditioning` turns them into UNet rows for an image size. */
export class PromptEmbeddings {
  constructor(
    /** [B, L, D]: the UNet's encoder_hidden_states. */
    readonly embeds: Tensor,
    /** [B, P]: pooled text (SDXL's text_embeds); undefined for families without one. */
    readonly pooled: Tensor | undefined,
    readonly truncated: readonly string[],
    /** The UNet's added conditioning this encoding is for (null: the UNet takes only the token embeddings). */
    readonly addition: TextTimeConfig | null,
  ) {}

  get count(): number { return this.embeds.shape[0]!; }

  /** Rows i..j-1. */
  rows(i: number, j = i + 1): PromptEmbeddings {
    return new PromptEmbeddings(rows(this.embeds, i, j), this.pooled && rows(this.pooled, i, j), this.truncated, this.addition);
  }

  /** All rows, k times over (as repeatRows). */
  repeat(k: number): PromptEmbeddings {
    return concatEmbeddings(Array<PromptEmbeddings>(k).fill(this));
  }

  /** The same pooled output with other token embeddings (fused embeddings, optimized conditioning). */
  withEmbeds(embeds: Tensor): PromptEmbeddings {
    if (embeds.shape[0] !== this.count) throw new Error(`withEmbeds: ${embeds.shape[0]} rows for ${this.count}`);
    return new PromptEmbeddings(embeds, this.pooled, this.truncated, this.addition);
  }

  /** UNet conditioning rows; the time ids [orig_h, orig_w, crop_top, crop_left, target_h, target_w] come from `micro`. */
  conditioning(micro: MicroConditioning): Conditioning {
    if (!this.addition) return { encoderHiddenStates: this.embeds };
    if (!this.pooled) throw new Error('PromptEmbeddings: this UNet needs a pooled text embedding');
    const ids = [...micro.originalSize, ...micro.cropTopLeft, ...micro.targetSize];
    const b = this.count;
    const timeIds = new Float32Array(b * TIME_IDS);
    for (let i = 0; i < b; i++) timeIds.set(ids, i * TIME_IDS);
    return { encoderHiddenStates: this.embeds, addedCond: { textEmbeds: this.pooled, timeIds: { shape: [b, TIME_IDS], data: timeIds } } };
  }
}

/** What pipelines take besides the prompt to condition a model of any family. */
export interface ConditioningOptions {
  /** SDXL: the second text encoder's prompt (default: the prompt). */
  prompt2?: string;
  /** SDXL: the second text encoder's negative prompt (default: the negative prompt). */
  negativePrompt2?: string;
  /** SDXL micro-conditioning; defaults as diffusers (image size, crop 0,0, image size). */
  micro?: Partial<MicroConditioning>;
  clipSkip?: number;
}

/** Token embeddings given directly (fused embeddings, optimized conditioning) as PromptEmbeddings. */
export function asEmbeddings(x: PromptEmbeddings | Tensor, addition: TextTimeConfig | null): PromptEmbeddings {
  return x instanceof PromptEmbeddings ? x : new PromptEmbeddings(x, undefined, [], addition);
}

export interface EncodeOptions {
  clipSkip?: number;
  /** Per prompt, the second encoder's text (SDXL prompt_2 / negative_prompt_2); null or absent: the prompt. */
  prompts2?: readonly (string | null | undefined)[];
}

export class PromptConditioner {
  constructor(
    /** The encoders in order: [CLIPTextModel] (SD 1.x/2.x) or [CLIPTextModel, CLIPTextModelWithProjection] (SDXL). */
    readonly encoders: readonly TextEncoder[],
    /** SDXL: hidden states without the final layer norm, concatenated, plus the pooled projection. */
    readonly dual: boolean,
    /** model_index.json force_zeros_for_empty_prompt (a missing negative prompt gives zeros). */
    readonly forceZerosForEmptyPrompt: boolean,
    /** The UNet's added conditioning (checked against the encoders' widths). */
    readonly addition: TextTimeConfig | null,
    /** The UNet's cross_attention_dim (checked against the embedding width). */
    readonly crossAttentionDim: number,
    /** Where the UNet's config came from, for messages. */
    readonly unetOrigin: string,
  ) {
    if (encoders.length === 0) throw new Error('PromptConditioner: no text encoder');
    const width = dual ? encoders.reduce((a, e) => a + e.config.hiddenSize, 0) : encoders[0]!.config.hiddenSize;
    if (width !== crossAttentionDim) {
      throw new FileFormatError(unetOrigin, `the UNet's cross-attention reads ${crossAttentionDim} channels but the text encoder${encoders.length > 1 ? 's give' : ' gives'} ${width}`, 'cross_attention_dim');
    }
    if (addition) {
      const last = encoders[encoders.length - 1]!;
      const pooled = last.projection ? last.config.projectionDim ?? last.projection.shape('weight')[0]! : last.config.hiddenSize;
      const expected = pooledWidth(addition);
      if (!dual || pooled !== expected) {
        throw new FileFormatError(unetOrigin, `the UNet's added conditioning expects pooled text of ${expected} values (projection_class_embeddings_input_dim ${addition.inputDim} - 6 x addition_time_embed_dim ${addition.timeEmbedDim}) but the text encoders give ${dual ? pooled : 'none'}`, 'projection_class_embeddings_input_dim');
      }
    }
  }

  get tokenizer(): TextEncoder['tokenizer'] { return this.encoders[0]!.tokenizer; }

  /** Embeddings of each prompt; null = no prompt given (a negative prompt left out). */
  async encode(prompts: readonly (string | null | undefined)[], o: EncodeOptions = {}): Promise<PromptEmbeddings> {
    const clipSkip = o.clipSkip ?? 0;
    if (!this.dual) {
      const emb = await this.encoders[0]!.encode(prompts.map((p) => p ?? ''), { clipSkip });
      return new PromptEmbeddings(emb.lastHiddenState, undefined, emb.truncated, this.addition);
    }
    const maxSkip = Math.min(...this.encoders.map((e) => e.config.numHiddenLayers)) - 1;
    if (!Number.isInteger(clipSkip) || clipSkip < 0 || clipSkip > maxSkip) throw new InputError(`--clip-skip must be an integer in [0, ${maxSkip}], got ${clipSkip}`);
    if (o.prompts2 && o.prompts2.length !== prompts.length) throw new Error(`encode: ${o.prompts2.length} second prompts for ${prompts.length} prompts`);
    // Rows to encode: zeroed rows (missing prompt with force_zeros) are filled in afterwards.
    const zero = prompts.map((p) => (p === null || p === undefined) && this.forceZerosForEmptyPrompt);
    const idx = prompts.map((_, i) => i).filter((i) => !zero[i]);
    const texts = this.encoders.map((_, e) => idx.map((i) => {
      const first = prompts[i] ?? '';
      // diffusers: prompt_2 = prompt_2 or prompt (an empty second prompt falls back too)
      return e === 0 ? first : (o.prompts2?.[i] || first);
    }));
    const outs = idx.length ? await Promise.all(this.encoders.map((enc, e) => enc.encodeHidden(texts[e]!, clipSkip + 2))) : [];
    const b = prompts.length, len = this.tokenizer.modelMaxLength;
    const widths = this.encoders.map((e) => e.config.hiddenSize);
    const d = widths.reduce((a, w) => a + w, 0);
    const embeds = new Float32Array(b * len * d);
    const pooledDim = outs.length ? outs[outs.length - 1]!.pooled.shape[1]! : pooledWidthOf(this.encoders[this.encoders.length - 1]!);
    const pooled = new Float32Array(b * pooledDim);
    idx.forEach((i, r) => {
      let off = 0;
      outs.forEach((out, e) => {
        const w = widths[e]!;
        for (let t = 0; t < len; t++) embeds.set(out.hiddenState.data.subarray((r * len + t) * w, (r * len + t + 1) * w), (i * len + t) * d + off);
        off += w;
      });
      pooled.set(outs[outs.length - 1]!.pooled.data.subarray(r * pooledDim, (r + 1) * pooledDim), i * pooledDim);
    });
    const truncated = [...new Set(outs.flatMap((x) => x.truncated))];
    return new PromptEmbeddings({ shape: [b, len, d], data: embeds }, { shape: [b, pooledDim], data: pooled }, truncated, this.addition);
  }
}

function pooledWidthOf(e: TextEncoder): number {
  return e.projection ? e.config.projectionDim ?? e.projection.shape('weight')[0]! : e.config.hiddenSize;
}

/** Stack the rows of several encodings (e.g. [negative, prompt]). */
export function concatEmbeddings(parts: readonly PromptEmbeddings[]): PromptEmbeddings {
  const pooled = parts.map((p) => p.pooled);
  const first = parts[0]!;
  return new PromptEmbeddings(
    concatRows(parts.map((p) => p.embeds)),
    pooled.every((p) => p) ? concatRows(pooled as Tensor[]) : undefined,
    [...new Set(parts.flatMap((p) => p.truncated))],
    first.addition,
  );
}
