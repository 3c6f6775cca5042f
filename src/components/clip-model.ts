/**
 * transformers' `CLIPModel`: the CLIP text and vision towers with their projections into the shared
 * embedding space, and the learned logit scale — what CLIP losses (PNO, Asyrp's directional loss) and
 * metrics (CLIP score) use.
 *
 * A CLIPModel folder holds `config.json` (`text_config`, `vision_config`, `projection_dim`,
 * `logit_scale_init_value`), `model.safetensors` (`text_model.*`, `vision_model.*`,
 * `text_projection.weight`, `visual_projection.weight`, `logit_scale`), the tokenizer files and
 * `preprocessor_config.json`.
 *
 * Text features follow `CLIPModel.get_text_features`: text_projection(pooler_output), where
 * pooler_output is the final-layer-normed hidden state at the first end-of-text token. Inputs are
 * tokenized with `padding='max_length'` and no padding mask is applied: with CLIP's causal mask the
 * EOS position only attends to positions up to itself, which are never padding, so the tokenizer's
 * attention_mask cannot change the pooled output (only the hidden states at padded positions).
 * Image features follow `get_image_features`: visual_projection(post_layernorm(class token)).
 * Neither is normalised.
 */
import path from 'node:path';
import { FileFormatError, InputError } from '../errors.js';
import { Graph, type Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { linear } from '../graph/nn.js';
import { compile } from '../graph/session.js';
import { CLIPImageProcessor } from '../io/clip-image-processor.js';
import { CLIPTokenizer } from '../io/clip-tokenizer.js';
import { Config, type Json } from '../io/config.js';
import type { RGBImage } from '../io/image.js';
import { openComponentWeights, WeightsView } from '../io/weights.js';
import { clipTextConfig, clipTextModel, clipVisionConfig, clipVisionModel, poolIndex, type CLIPTextConfig, type CLIPVisionConfig } from '../models/clip.js';
import type { Tensor } from '../tensor.js';

// ---------------------------------------------------------------------------------------------------
// Config

/** transformers' CLIPTextConfig defaults (used for keys missing from `text_config`). */
export const CLIP_TEXT_CONFIG_DEFAULTS: Readonly<Record<string, Json>> = {
  vocab_size: 49408,
  hidden_size: 512,
  intermediate_size: 2048,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 8,
  max_position_embeddings: 77,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
  bos_token_id: 49406,
  eos_token_id: 49407,
};

/** transformers' CLIPVisionConfig defaults (used for keys missing from `vision_config`). */
export const CLIP_VISION_CONFIG_DEFAULTS: Readonly<Record<string, Json>> = {
  hidden_size: 768,
  intermediate_size: 3072,
  projection_dim: 512,
  num_hidden_layers: 12,
  num_attention_heads: 12,
  num_channels: 3,
  image_size: 224,
  patch_size: 32,
  hidden_act: 'quick_gelu',
  layer_norm_eps: 1e-5,
};

export interface CLIPModelConfig {
  /** The text tower; `projectionDim` is the model's `projection_dim` (what text_projection maps to). */
  readonly text: CLIPTextConfig & { projectionDim: number };
  /** The vision tower; `projectionDim` is the model's `projection_dim`. */
  readonly vision: CLIPVisionConfig;
  /** Width of the shared embedding space (`projection_dim`, default 512). */
  readonly projectionDim: number;
  /** `logit_scale_init_value` (default 2.6592 = log(1/0.07)); the weights' `logit_scale` is what is used. */
  readonly logitScaleInitValue: number;
  /** Nested configs that were absent, so that every key came from transformers' defaults. */
  readonly defaulted: readonly ('text_config' | 'vision_config')[];
}

function nestedObject(c: Config, key: string): Record<string, Json> | undefined {
  if (!c.has(key)) return undefined;
  const v = c.raw[key];
  if (typeof v !== 'object' || v === null || Array.isArray(v)) {
    throw new FileFormatError(c.file, `expected an object (the ${key.replace('_dict', '')} of a CLIPModel), got ${JSON.stringify(v)}`, key);
  }
  return v as Record<string, Json>;
}

/**
 * The config of a transformers CLIPModel (`config.json` with nested `text_config` / `vision_config`).
 * Missing nested keys (or a missing nested config) take transformers' CLIPTextConfig / CLIPVisionConfig
 * defaults, as transformers does; legacy `text_config_dict` / `vision_config_dict` entries override,
 * as in CLIPConfig.__init__. The top-level `projection_dim` sizes both projections (CLIPModel ignores
 * the nested ones).
 */
export function clipModelConfig(c: Config): CLIPModelConfig {
  const projectionDim = c.int('projection_dim', 512);
  const logitScaleInitValue = c.number('logit_scale_init_value', 2.6592);
  const defaulted: ('text_config' | 'vision_config')[] = [];
  const nested = (key: 'text_config' | 'vision_config', defaults: Readonly<Record<string, Json>>): Config => {
    const main = nestedObject(c, key);
    const legacy = nestedObject(c, `${key}_dict`);
    if (!main && !legacy) defaulted.push(key);
    const raw: Record<string, Json> = { ...defaults };
    for (const src of [main, legacy]) {
      for (const [k, v] of Object.entries(src ?? {})) if (v !== null) raw[k] = v;
    }
    raw['projection_dim'] = projectionDim;
    return new Config(`${c.file} (${key})`, raw);
  };
  const text = clipTextConfig(nested('text_config', CLIP_TEXT_CONFIG_DEFAULTS));
  const vision = clipVisionConfig(nested('vision_config', CLIP_VISION_CONFIG_DEFAULTS));
  for (const [what, cfg] of [['text_config', text], ['vision_config', vision]] as const) {
    if (cfg.hiddenSize % cfg.numAttentionHeads !== 0) {
      throw new FileFormatError(c.file, `hidden_size ${cfg.hiddenSize} is not divisible by num_attention_heads ${cfg.numAttentionHeads}`, what);
    }
  }
  if (vision.imageSize % vision.patchSize !== 0) {
    throw new FileFormatError(c.file, `image_size ${vision.imageSize} is not a multiple of patch_size ${vision.patchSize}`, 'vision_config');
  }
  return { text: { ...text, projectionDim }, vision, projectionDim, logitScaleInitValue, defaulted };
}

// ---------------------------------------------------------------------------------------------------
// Graph builders (pure IR functions of their inputs; weights are constants)

export interface CLIPFeatureOutputs {
  /** [B, projection_dim]: the projected features (not normalised). */
  readonly features: Value;
  /** [B, hidden]: the tower's pooler_output, before the projection. */
  readonly pooledOutput: Value;
}

/**
 * CLIP text features in the graph: text_projection(final_layer_norm(last hidden state)[b, eos[b]]).
 * `inputIds`: int64 [B, L]. `eosPositions`: the pooled position of each row, known in TypeScript from
 * the token ids (`poolIndex(ids, cfg.text.eosTokenId)`) and gathered as constant indices; or an int64
 * [B] graph value holding them (one compiled graph for any prompts). `vb`: the CLIPModel's root view.
 */
export function clipTextTower(inputIds: Value, eosPositions: readonly number[] | Value, vb: WeightsView, cfg: CLIPModelConfig): CLIPFeatureOutputs {
  const [b, len] = inputIds.shape as [number, number];
  const d = cfg.text.hiddenSize;
  const last = clipTextModel(inputIds, vb, cfg.text).lastHiddenState;
  const flat = op.reshape(last, [b * len, d]);
  let pooledOutput: Value;
  if (Array.isArray(eosPositions)) {
    const positions = eosPositions as readonly number[];
    if (positions.length !== b) throw new InputError(`clipTextTower: ${positions.length} EOS positions for a batch of ${b}`);
    positions.forEach((p, i) => {
      if (!Number.isInteger(p) || p < 0 || p >= len) throw new InputError(`clipTextTower: EOS position ${p} of row ${i} is outside [0, ${len})`);
    });
    pooledOutput = op.gather(flat, 0, positions.map((p, i) => i * len + p));
  } else {
    const positions = eosPositions as Value;
    if (positions.dtype !== 'int64' || positions.shape.length !== 1 || positions.shape[0] !== b) {
      throw new Error(`clipTextTower: EOS positions must be int64 [${b}], got ${positions.dtype} [${positions.shape}]`);
    }
    const g = inputIds.graph;
    const offsets = g.constant({ dtype: 'int64', shape: [b], data: BigInt64Array.from({ length: b }, (_, i) => BigInt(i * len)) }, 'row_offsets');
    const rowsAt = op.add(positions, offsets);
    pooledOutput = g.node('Gather', [flat, rowsAt], [{ shape: [b, d], dtype: flat.dtype }], { axis: 0 })[0]!;
  }
  const features = linear(pooledOutput, vb.pp('text_projection'), d, cfg.projectionDim, false);
  return { features, pooledOutput };
}

/** `get_text_features` as an IR value [B, projection_dim]; see clipTextTower. */
export function clipTextFeatures(inputIds: Value, eosPositions: readonly number[] | Value, vb: WeightsView, cfg: CLIPModelConfig): Value {
  return clipTextTower(inputIds, eosPositions, vb, cfg).features;
}

/**
 * CLIP image features in the graph: visual_projection(post_layernorm(class token)) of float
 * pixel_values [B, C, S, S] (already resized and normalised with the CLIP mean/std). A pure IR
 * function of `pixelValues`, so gradients w.r.t. the pixels flow through it.
 */
export function clipImageTower(pixelValues: Value, vb: WeightsView, cfg: CLIPModelConfig): CLIPFeatureOutputs {
  const v = cfg.vision;
  const [, c, h, w] = pixelValues.shape;
  if (pixelValues.rank !== 4 || c !== v.numChannels || h !== v.imageSize || w !== v.imageSize) {
    throw new InputError(`CLIP image features need pixel_values [B, ${v.numChannels}, ${v.imageSize}, ${v.imageSize}], got [${pixelValues.shape.join(', ')}]`);
  }
  const out = clipVisionModel(pixelValues, vb, v, vb.pp('visual_projection'));
  return { features: out.imageEmbeds, pooledOutput: out.pooledOutput };
}

/** `get_image_features` as an IR value [B, projection_dim]; see clipImageTower. */
export function clipImageFeatures(pixelValues: Value, vb: WeightsView, cfg: CLIPModelConfig): Value {
  return clipImageTower(pixelValues, vb, cfg).features;
}

// ---------------------------------------------------------------------------------------------------
// Host-side similarity math (float64 accumulation, float32 results)

/** Rows divided by their L2 norm (torch.nn.functional.normalize, eps 1e-12). */
export function normalizeRows(t: Tensor): Tensor {
  if (t.shape.length !== 2) throw new Error(`normalizeRows: expected [N, D], got [${t.shape}]`);
  const [n, d] = t.shape as [number, number];
  const out = new Float32Array(n * d);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let k = 0; k < d; k++) s += t.data[i * d + k]! ** 2;
    const norm = Math.max(Math.sqrt(s), 1e-12);
    for (let k = 0; k < d; k++) out[i * d + k] = t.data[i * d + k]! / norm;
  }
  return { shape: [n, d], data: out };
}

/** cos[i, j] = a_i . b_j / (|a_i| |b_j|) for a [N, D], b [M, D]: [N, M]. */
export function cosineMatrix(a: Tensor, b: Tensor): Tensor {
  if (a.shape.length !== 2 || b.shape.length !== 2 || a.shape[1] !== b.shape[1]) {
    throw new Error(`cosineMatrix: expected [N, D] and [M, D], got [${a.shape}] and [${b.shape}]`);
  }
  const [n, d] = a.shape as [number, number];
  const m = b.shape[0]!;
  const norm = (t: Tensor, i: number): number => {
    let s = 0;
    for (let k = 0; k < d; k++) s += t.data[i * d + k]! ** 2;
    return Math.max(Math.sqrt(s), 1e-12);
  };
  const na = Array.from({ length: n }, (_, i) => norm(a, i));
  const nb = Array.from({ length: m }, (_, j) => norm(b, j));
  const out = new Float32Array(n * m);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < m; j++) {
      let s = 0;
      for (let k = 0; k < d; k++) s += a.data[i * d + k]! * b.data[j * d + k]!;
      out[i * m + j] = s / (na[i]! * nb[j]!);
    }
  }
  return { shape: [n, m], data: out };
}

export interface CLIPSimilarity {
  /** [nImages, nTexts]: cos(image_i, text_j). */
  readonly cosine: Tensor;
  /** [nImages, nTexts]: exp(logit_scale) * cosine (CLIPModel.forward's logits_per_image). */
  readonly logitsPerImage: Tensor;
  /** [nTexts, nImages]: the transpose. */
  readonly logitsPerText: Tensor;
  /** [nImages, nTexts]: max(100 * cosine, 0) (torchmetrics CLIPScore per pair). */
  readonly clipScore: Tensor;
}

/** Logits and CLIP scores from (unnormalised) image and text features. */
export function clipSimilarity(imageEmbeds: Tensor, textEmbeds: Tensor, logitScale: number): CLIPSimilarity {
  const cosine = cosineMatrix(imageEmbeds, textEmbeds);
  const [ni, nt] = cosine.shape as [number, number];
  const logitsPerImage = new Float32Array(ni * nt);
  const logitsPerText = new Float32Array(nt * ni);
  const clipScore = new Float32Array(ni * nt);
  for (let i = 0; i < ni; i++) {
    for (let j = 0; j < nt; j++) {
      const c = cosine.data[i * nt + j]!;
      logitsPerImage[i * nt + j] = logitScale * c;
      logitsPerText[j * ni + i] = logitScale * c;
      clipScore[i * nt + j] = Math.max(100 * c, 0);
    }
  }
  return {
    cosine,
    logitsPerImage: { shape: [ni, nt], data: logitsPerImage },
    logitsPerText: { shape: [nt, ni], data: logitsPerText },
    clipScore: { shape: [ni, nt], data: clipScore },
  };
}

// ---------------------------------------------------------------------------------------------------
// The model

export interface CLIPTextFeatureResult {
  /** [B, projection_dim] get_text_features (not normalised). */
  readonly textEmbeds: Tensor;
  /** [B, hidden] pooler_output of the text tower. */
  readonly poolerOutput: Tensor;
  /** Texts longer than the tokenizer's max length, which were truncated. */
  readonly truncated: readonly string[];
}

export interface CLIPImageFeatureResult {
  /** [B, projection_dim] get_image_features (not normalised). */
  readonly imageEmbeds: Tensor;
  /** [B, hidden] pooler_output of the vision tower (post_layernorm of the class token). */
  readonly poolerOutput: Tensor;
}

export class CLIPModel {
  private tokenizerMemo: CLIPTokenizer | undefined;
  private processorMemo: CLIPImageProcessor | undefined;

  constructor(
    /** The model folder (tokenizer files and preprocessor_config.json are read from it on first use). */
    readonly dir: string,
    readonly config: CLIPModelConfig,
    /** Root view of the CLIPModel weights (`text_model.*`, `vision_model.*`, projections, `logit_scale`). */
    readonly weights: WeightsView,
    /** Identifies the weights in the session cache. */
    readonly id: string = path.resolve(dir),
  ) {}

  /**
   * Open a transformers CLIPModel folder. Checks the shapes of the main weights against the config
   * without reading them, so a config that does not fit its weights (e.g. a missing `text_config`,
   * read as transformers' defaults) is reported here, naming the nested config.
   */
  static open(dir: string): CLIPModel {
    const configFile = path.join(dir, 'config.json');
    const config = clipModelConfig(Config.read(configFile));
    const weights = new WeightsView(openComponentWeights(dir));
    const t = config.text, v = config.vision;
    const checks: [key: 'text_config' | 'vision_config' | 'projection_dim', weight: string, expected: number[]][] = [
      ['text_config', 'text_model.embeddings.token_embedding.weight', [t.vocabSize, t.hiddenSize]],
      ['text_config', 'text_model.embeddings.position_embedding.weight', [t.maxPositionEmbeddings, t.hiddenSize]],
      ['text_config', 'text_model.encoder.layers.0.mlp.fc1.weight', [t.intermediateSize, t.hiddenSize]],
      ['vision_config', 'vision_model.embeddings.patch_embedding.weight', [v.hiddenSize, v.numChannels, v.patchSize, v.patchSize]],
      ['vision_config', 'vision_model.embeddings.position_embedding.weight', [(v.imageSize / v.patchSize) ** 2 + 1, v.hiddenSize]],
      ['vision_config', 'vision_model.encoder.layers.0.mlp.fc1.weight', [v.intermediateSize, v.hiddenSize]],
      ['projection_dim', 'text_projection.weight', [config.projectionDim, t.hiddenSize]],
      ['projection_dim', 'visual_projection.weight', [config.projectionDim, v.hiddenSize]],
    ];
    for (const [key, weight, expected] of checks) {
      const shape = weights.shape(weight);
      if (shape.length !== expected.length || shape.some((s, i) => s !== expected[i])) {
        const why = key !== 'projection_dim' && config.defaulted.includes(key)
          ? ` (${key} is missing, so transformers' Config defaults were used)` : '';
        throw new FileFormatError(configFile, `config gives ${weight} the shape [${expected.join(', ')}] but ${weights.source.origin} holds [${shape.join(', ')}]${why}`, key);
      }
    }
    for (const [key, layers, prefix] of [['text_config', t.numHiddenLayers, 'text_model'], ['vision_config', v.numHiddenLayers, 'vision_model']] as const) {
      if (!weights.has(`${prefix}.encoder.layers.${layers - 1}.mlp.fc1.weight`) || weights.has(`${prefix}.encoder.layers.${layers}.mlp.fc1.weight`)) {
        throw new FileFormatError(configFile, `num_hidden_layers ${layers} does not match the layers of ${prefix} in ${weights.source.origin}`, key);
      }
    }
    return new CLIPModel(dir, config, weights);
  }

  /** The tokenizer of the folder (vocab.json, merges.txt, tokenizer_config.json). */
  get tokenizer(): CLIPTokenizer {
    return (this.tokenizerMemo ??= CLIPTokenizer.fromDir(this.dir));
  }

  /** The image processor of the folder (preprocessor_config.json). */
  get processor(): CLIPImageProcessor {
    return (this.processorMemo ??= CLIPImageProcessor.fromFile(path.join(this.dir, 'preprocessor_config.json')));
  }

  /** exp(logit_scale) from the weights. */
  logitScale(): number {
    const t = this.weights.get('logit_scale');
    if (t.data.length !== 1) throw new FileFormatError(this.weights.source.origin, `expected a scalar, got shape [${t.shape.join(', ')}]`, 'logit_scale');
    return Math.exp(t.data[0]!);
  }

  /** Texts -> get_text_features, tokenized with padding='max_length' and truncation like transformers. */
  async encodeText(texts: readonly string[]): Promise<CLIPTextFeatureResult> {
    if (texts.length === 0) throw new InputError('CLIPModel: no texts given');
    const tok = this.tokenizer;
    const len = tok.modelMaxLength;
    if (len > this.config.text.maxPositionEmbeddings) {
      throw new FileFormatError(path.join(this.dir, 'tokenizer_config.json'), `model_max_length ${len} exceeds the text model's max_position_embeddings ${this.config.text.maxPositionEmbeddings}`, 'model_max_length');
    }
    const encodings = texts.map((t) => tok.encode(t));
    const r = await this.encodeTextIds(encodings.map((e) => e.input_ids));
    return { ...r, truncated: texts.filter((_, i) => encodings[i]!.truncated) };
  }

  /** Token ids (rows of one length, BOS ... EOS pad ...) -> get_text_features. */
  async encodeTextIds(ids: readonly (readonly number[])[]): Promise<Omit<CLIPTextFeatureResult, 'truncated'>> {
    const b = ids.length;
    if (b === 0) throw new InputError('CLIPModel: no token ids given');
    const len = ids[0]!.length;
    if (ids.some((r) => r.length !== len)) throw new InputError('CLIPModel: token id rows differ in length');
    if (len < 1 || len > this.config.text.maxPositionEmbeddings) throw new InputError(`CLIPModel: ${len} tokens per row, the text model takes 1..${this.config.text.maxPositionEmbeddings}`);
    const vocab = this.config.text.vocabSize;
    for (const row of ids) for (const t of row) if (!Number.isInteger(t) || t < 0 || t >= vocab) throw new InputError(`CLIPModel: token id ${t} outside the vocabulary [0, ${vocab})`);
    const positions = ids.map((r) => poolIndex([...r], this.config.text.eosTokenId));
    const session = await compile(`clip-model:${this.id}:text:${b}x${len}`, () => {
      const g = new Graph('clip_text_features');
      const input = g.input('input_ids', [b, len], 'int64');
      const eos = g.input('eos_positions', [b], 'int64');
      const out = clipTextTower(input, eos, this.weights, this.config);
      g.output('text_embeds', out.features);
      g.output('pooler_output', out.pooledOutput);
      return g;
    });
    const r = await session.run({
      input_ids: { int64: ids.flatMap((row) => [...row]), shape: [b, len] },
      eos_positions: { int64: positions, shape: [b] },
    });
    return { textEmbeds: r.text_embeds!, poolerOutput: r.pooler_output! };
  }

  /** pixel_values [B, 3, S, S] (CLIPImageProcessor output) -> get_image_features. */
  async encodePixels(pixelValues: Tensor): Promise<CLIPImageFeatureResult> {
    const session = await compile(`clip-model:${this.id}:vision:${pixelValues.shape.join('x')}`, () => {
      const g = new Graph('clip_image_features');
      const out = clipImageTower(g.input('pixel_values', pixelValues.shape), this.weights, this.config);
      g.output('image_embeds', out.features);
      g.output('pooler_output', out.pooledOutput);
      return g;
    });
    const r = await session.run({ pixel_values: pixelValues });
    return { imageEmbeds: r.image_embeds!, poolerOutput: r.pooler_output! };
  }

  /** get_text_features: [B, projection_dim], not normalised. */
  async textFeatures(texts: readonly string[]): Promise<Tensor> {
    return (await this.encodeText(texts)).textEmbeds;
  }

  /** get_image_features of images preprocessed with the folder's CLIPImageProcessor: [B, projection_dim]. */
  async imageFeatures(images: readonly RGBImage[]): Promise<Tensor> {
    return this.imageFeaturesFromPixels(this.processor.preprocess(images));
  }

  /** get_image_features of ready pixel_values [B, 3, S, S]: [B, projection_dim]. */
  async imageFeaturesFromPixels(pixelValues: Tensor): Promise<Tensor> {
    return (await this.encodePixels(pixelValues)).imageEmbeds;
  }

  /** Every image against every text: cosine, logits_per_image / logits_per_text, CLIP score. */
  async similarity(images: readonly RGBImage[], texts: readonly string[]): Promise<CLIPSimilarity> {
    const [imageEmbeds, textEmbeds] = [await this.imageFeatures(images), await this.textFeatures(texts)];
    return clipSimilarity(imageEmbeds, textEmbeds, this.logitScale());
  }

  /** CLIP score of one (image, text) pair: max(100 * cos, 0) (torchmetrics CLIPScore). */
  async clipScore(image: RGBImage, text: string): Promise<number> {
    return (await this.similarity([image], [text])).clipScore.data[0]!;
  }
}
