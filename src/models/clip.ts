/**
 * CLIP encoders as transformers defines them: CLIPTextModel (causal self-attention, final layer norm,
 * pooled output at the end-of-text token) and CLIPVisionModelWithProjection (patch embedding, class
 * token, pre/post layer norms, visual projection). Weight names are transformers' (`text_model.*`,
 * `vision_model.*`, `visual_projection`).
 */
import { Config } from '../io/config.js';
import type { WeightsView } from '../io/weights.js';
import type { Value } from '../graph/ir.js';
import * as op from '../graph/ops.js';
import { activation, attentionCore, conv2d, layerNorm, linear, mergeHeads, param, splitHeads, type Activation } from '../graph/nn.js';

export interface CLIPEncoderConfig {
  hiddenSize: number;
  intermediateSize: number;
  numAttentionHeads: number;
  numHiddenLayers: number;
  hiddenAct: Activation;
  layerNormEps: number;
}

export interface CLIPTextConfig extends CLIPEncoderConfig {
  vocabSize: number;
  maxPositionEmbeddings: number;
  eosTokenId: number;
  projectionDim?: number;
}

export interface CLIPVisionConfig extends CLIPEncoderConfig {
  imageSize: number;
  patchSize: number;
  numChannels: number;
  projectionDim: number;
}

function encoderConfig(c: Config): CLIPEncoderConfig {
  return {
    hiddenSize: c.int('hidden_size'),
    intermediateSize: c.int('intermediate_size'),
    numAttentionHeads: c.int('num_attention_heads'),
    numHiddenLayers: c.int('num_hidden_layers'),
    hiddenAct: c.oneOf<Activation>('hidden_act', ['gelu', 'quick_gelu'], 'quick_gelu'),
    layerNormEps: c.number('layer_norm_eps', 1e-5),
  };
}

export function clipTextConfig(c: Config): CLIPTextConfig {
  return {
    ...encoderConfig(c),
    vocabSize: c.int('vocab_size'),
    maxPositionEmbeddings: c.int('max_position_embeddings', 77),
    eosTokenId: c.int('eos_token_id', 49407),
    ...(c.has('projection_dim') ? { projectionDim: c.int('projection_dim') } : {}),
  };
}

export function clipVisionConfig(c: Config): CLIPVisionConfig {
  return {
    ...encoderConfig(c),
    imageSize: c.int('image_size'),
    patchSize: c.int('patch_size'),
    numChannels: c.int('num_channels', 3),
    projectionDim: c.int('projection_dim'),
  };
}

/** CLIPAttention: q is scaled before the product, as transformers does. */
function selfAttention(x: Value, vb: WeightsView, cfg: CLIPEncoderConfig, mask?: Value): Value {
  const d = cfg.hiddenSize, heads = cfg.numAttentionHeads;
  const q = splitHeads(linear(x, vb.pp('q_proj'), d, d), heads);
  const k = splitHeads(linear(x, vb.pp('k_proj'), d, d), heads);
  const v = splitHeads(linear(x, vb.pp('v_proj'), d, d), heads);
  const scale = (d / heads) ** -0.5;
  return linear(mergeHeads(attentionCore(q, k, v, scale, mask)), vb.pp('out_proj'), d, d);
}

function encoderLayer(x: Value, vb: WeightsView, cfg: CLIPEncoderConfig, mask?: Value): Value {
  const d = cfg.hiddenSize;
  let h = op.add(x, selfAttention(layerNorm(x, vb.pp('layer_norm1'), d, cfg.layerNormEps), vb.pp('self_attn'), cfg, mask));
  const m = layerNorm(h, vb.pp('layer_norm2'), d, cfg.layerNormEps);
  const mlp = linear(activation(cfg.hiddenAct, linear(m, vb.pp('mlp.fc1'), d, cfg.intermediateSize)), vb.pp('mlp.fc2'), cfg.intermediateSize, d);
  h = op.add(h, mlp);
  return h;
}

/** Runs the encoder stack; returns every hidden state (the input first, as transformers' hidden_states). */
function encoder(x: Value, vb: WeightsView, cfg: CLIPEncoderConfig, mask?: Value): Value[] {
  const states = [x];
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    states.push(x.graph.scope(`layers.${i}`, () => encoderLayer(states[i]!, vb.pp('layers').pp(i), cfg, mask)));
  }
  return states;
}

export interface CLIPTextOutputs {
  lastHiddenState: Value;
  /** hidden_states[0..L]: embeddings, then each layer's output (before the final layer norm). */
  hiddenStates: Value[];
  /** final_layer_norm(hidden_states[-1 - clipSkip]) — what diffusers' clip_skip uses. */
  finalLayerNorm(state: Value): Value;
}

/** CLIPTextModel on int64 input_ids [B, L] with the causal mask (no padding mask, as SD pipelines call it). */
export function clipTextModel(inputIds: Value, vb: WeightsView, cfg: CLIPTextConfig): CLIPTextOutputs {
  const g = inputIds.graph;
  const [, len] = inputIds.shape as [number, number];
  const tv = vb.pp('text_model');
  const d = cfg.hiddenSize;
  const tokens = g.node('Gather', [param(g, tv.pp('embeddings.token_embedding'), 'weight', [cfg.vocabSize, d]), inputIds], [{ shape: [...inputIds.shape, d], dtype: 'float32' }], { axis: 0 })[0]!;
  const positions = op.slice(param(g, tv.pp('embeddings.position_embedding'), 'weight', [cfg.maxPositionEmbeddings, d]), 0, 0, len);
  const x = op.add(tokens, positions);
  const mask = new Float32Array(len * len);
  for (let i = 0; i < len; i++) for (let j = i + 1; j < len; j++) mask[i * len + j] = -3.4028234663852886e38; // finfo(float32).min
  const causal = op.constFloat(g, [1, 1, len, len], mask, 'causal_mask');
  const hiddenStates = encoder(x, tv.pp('encoder'), cfg, causal);
  const finalLayerNorm = (s: Value): Value => layerNorm(s, tv.pp('final_layer_norm'), d, cfg.layerNormEps);
  return { lastHiddenState: finalLayerNorm(hiddenStates[hiddenStates.length - 1]!), hiddenStates, finalLayerNorm };
}

/** Position of the pooled token per row: the first end-of-text id (argmax of ids for legacy eos id 2). */
export function poolIndex(ids: readonly number[], eosTokenId: number): number {
  if (eosTokenId === 2) return ids.indexOf(Math.max(...ids));
  const i = ids.indexOf(eosTokenId);
  return i < 0 ? 0 : i;
}

export interface CLIPVisionOutputs {
  lastHiddenState: Value;
  hiddenStates: Value[];
  pooledOutput: Value;
  imageEmbeds: Value;
}

/** CLIPVisionModelWithProjection on pixel_values [B, 3, S, S]. */
export function clipVisionModel(pixelValues: Value, vb: WeightsView, cfg: CLIPVisionConfig, projection: WeightsView | null): CLIPVisionOutputs {
  const g = pixelValues.graph;
  const vv = vb.pp('vision_model');
  const d = cfg.hiddenSize;
  const b = pixelValues.dim(0);
  const grid = cfg.imageSize / cfg.patchSize;
  const patches = conv2d(pixelValues, vv.pp('embeddings.patch_embedding'), cfg.numChannels, d, cfg.patchSize, { stride: cfg.patchSize, bias: false });
  const patchTokens = op.transpose(op.reshape(patches, [b, d, grid * grid]), [0, 2, 1]);
  const cls = op.reshape(param(g, vv.pp('embeddings'), 'class_embedding', [d]), [1, 1, d]);
  const clsRows = op.concat(Array<Value>(b).fill(cls), 0);
  const tokens = op.concat([clsRows, patchTokens], 1);
  const x = op.add(tokens, op.reshape(param(g, vv.pp('embeddings.position_embedding'), 'weight', [grid * grid + 1, d]), [1, grid * grid + 1, d]));
  const pre = layerNorm(x, vv.pp('pre_layrnorm'), d, cfg.layerNormEps);
  const hiddenStates = encoder(pre, vv.pp('encoder'), cfg);
  const last = hiddenStates[hiddenStates.length - 1]!;
  const pooledOutput = layerNorm(op.reshape(op.slice(last, 1, 0, 1), [b, d]), vv.pp('post_layernorm'), d, cfg.layerNormEps);
  const imageEmbeds = projection ? linear(pooledOutput, projection, d, cfg.projectionDim, false) : pooledOutput;
  return { lastHiddenState: last, hiddenStates, pooledOutput, imageEmbeds };
}
