/**
 * Random weights for the benchmark: a TensorSource that knows every key and shape of a diffusers /
 * transformers checkpoint from its config (the state-dict layout of UNet2DConditionModel,
 * AutoencoderKL and CLIPTextModel), and serves each tensor as deterministic pseudo-random float32
 * data made on every `read` (nothing is cached). Initialisation follows PyTorch's defaults (nn.Linear / nn.Conv2d:
 * uniform in ±1/sqrt(fan_in) for weight and bias; norms: weight 1, bias 0; embeddings: unit variance),
 * so activations stay finite through the full-size models, as with a freshly constructed diffusers model.
 *
 * The tables are written from diffusers' and transformers' module definitions, not from our builders,
 * so a mismatch between a builder and the real checkpoint layout shows up as a missing-weight error
 * (a key the builder asks for that the table lacks) or as unread keys (`unread()`).
 */
import { FileFormatError } from '../src/errors.js';
import { SafetensorsWriter } from '../src/io/safetensors.js';
import type { TensorSource } from '../src/io/weights.js';
import type { AutoencoderKLConfig } from '../src/models/autoencoder-kl.js';
import type { CLIPTextConfig } from '../src/models/clip.js';
import type { ControlNetConfig } from '../src/models/controlnet.js';
import type { UNet2DConditionConfig } from '../src/models/unet2d-condition.js';
import { numel, type Tensor } from '../src/tensor.js';

export type Init = { kind: 'uniform'; bound: number } | { kind: 'ones' } | { kind: 'zeros' };

export interface WeightSpec {
  readonly shape: readonly number[];
  readonly init: Init;
}

/** key -> shape and initialisation; insertion order is the state-dict order. */
export type WeightTable = Map<string, WeightSpec>;

/** Builds a table with the PyTorch module kinds that own parameters. */
export class TableBuilder {
  readonly table: WeightTable = new Map();

  private put(key: string, shape: readonly number[], init: Init): void {
    if (this.table.has(key)) throw new Error(`weight table: ${key} declared twice`);
    if (!shape.every((d) => Number.isInteger(d) && d > 0)) throw new Error(`weight table: ${key} has shape [${shape}]`);
    this.table.set(key, { shape, init });
  }

  /** nn.Linear(inF, outF): weight [out, in], bias [out]. */
  linear(prefix: string, inF: number, outF: number, bias = true): void {
    const bound = 1 / Math.sqrt(inF);
    this.put(`${prefix}.weight`, [outF, inF], { kind: 'uniform', bound });
    if (bias) this.put(`${prefix}.bias`, [outF], { kind: 'uniform', bound });
  }

  /** nn.Conv2d(inC, outC, k): weight [out, in, k, k], bias [out]. */
  conv(prefix: string, inC: number, outC: number, k: number, bias = true): void {
    const bound = 1 / Math.sqrt(inC * k * k);
    this.put(`${prefix}.weight`, [outC, inC, k, k], { kind: 'uniform', bound });
    if (bias) this.put(`${prefix}.bias`, [outC], { kind: 'uniform', bound });
  }

  /** nn.GroupNorm / nn.LayerNorm with affine parameters. */
  norm(prefix: string, c: number): void {
    this.put(`${prefix}.weight`, [c], { kind: 'ones' });
    this.put(`${prefix}.bias`, [c], { kind: 'zeros' });
  }

  /** nn.Embedding(n, d): unit variance (uniform in ±sqrt(3)). */
  embedding(prefix: string, n: number, d: number): void {
    this.put(`${prefix}.weight`, [n, d], { kind: 'uniform', bound: Math.sqrt(3) });
  }

  /** diffusers ResnetBlock2D (temb 0: the VAE's, without time_emb_proj). */
  resnet(prefix: string, inC: number, outC: number, temb: number): void {
    this.norm(`${prefix}.norm1`, inC);
    this.conv(`${prefix}.conv1`, inC, outC, 3);
    if (temb > 0) this.linear(`${prefix}.time_emb_proj`, temb, outC);
    this.norm(`${prefix}.norm2`, outC);
    this.conv(`${prefix}.conv2`, outC, outC, 3);
    if (inC !== outC) this.conv(`${prefix}.conv_shortcut`, inC, outC, 1); // use_in_shortcut
  }

  /** diffusers Attention (to_q/k/v, to_out.0). */
  attention(prefix: string, queryDim: number, contextDim: number, inner: number, qkvBias: boolean): void {
    this.linear(`${prefix}.to_q`, queryDim, inner, qkvBias);
    this.linear(`${prefix}.to_k`, contextDim, inner, qkvBias);
    this.linear(`${prefix}.to_v`, contextDim, inner, qkvBias);
    this.linear(`${prefix}.to_out.0`, inner, queryDim);
  }

  /** diffusers Transformer2DModel (continuous input) with BasicTransformerBlocks and a GEGLU feed-forward. */
  transformer2D(prefix: string, c: number, inner: number, crossDim: number, layers: number, linearProjection: boolean): void {
    this.norm(`${prefix}.norm`, c);
    if (linearProjection) this.linear(`${prefix}.proj_in`, c, inner);
    else this.conv(`${prefix}.proj_in`, c, inner, 1);
    for (let i = 0; i < layers; i++) {
      const b = `${prefix}.transformer_blocks.${i}`;
      this.norm(`${b}.norm1`, inner);
      this.attention(`${b}.attn1`, inner, inner, inner, false);
      this.norm(`${b}.norm2`, inner);
      this.attention(`${b}.attn2`, inner, crossDim, inner, false);
      this.norm(`${b}.norm3`, inner);
      this.linear(`${b}.ff.net.0.proj`, inner, inner * 4 * 2);
      this.linear(`${b}.ff.net.2`, inner * 4, inner);
    }
    if (linearProjection) this.linear(`${prefix}.proj_out`, inner, c);
    else this.conv(`${prefix}.proj_out`, inner, c, 1);
  }
}

/**
 * The encoder half shared by UNet2DConditionModel and ControlNetModel (conv_in, time embedding, down
 * blocks, mid block); returns the channels of every skip connection (down_block_res_samples order).
 */
function unetEncoder(t: TableBuilder, cfg: UNet2DConditionConfig): number[] {
  const ch = cfg.blockOutChannels;
  const n = ch.length;
  const temb = ch[0]! * 4;
  const heads = cfg.numAttentionHeads;
  const layers = cfg.transformerLayersPerBlock;
  t.conv('conv_in', cfg.inChannels, ch[0]!, 3);
  t.linear('time_embedding.linear_1', ch[0]!, temb);
  t.linear('time_embedding.linear_2', temb, temb);
  if (cfg.addition) {
    // SDXL's text_time added conditioning
    t.linear('add_embedding.linear_1', cfg.addition.inputDim, temb);
    t.linear('add_embedding.linear_2', temb, temb);
  }
  const skips: number[] = [ch[0]!];
  let prev = ch[0]!;
  for (let i = 0; i < n; i++) {
    const out = ch[i]!;
    const p = `down_blocks.${i}`;
    for (let j = 0; j < cfg.layersPerBlock; j++) {
      t.resnet(`${p}.resnets.${j}`, j === 0 ? prev : out, out, temb);
      if (cfg.downBlockTypes[i] === 'CrossAttnDownBlock2D') {
        // inner = heads * (out / heads) = out channels in every SD 1.x/2.x block
        t.transformer2D(`${p}.attentions.${j}`, out, heads[i]! * (out / heads[i]!), cfg.crossAttentionDim, layers[i]!, cfg.useLinearProjection);
      }
      skips.push(out);
    }
    if (i < n - 1) {
      t.conv(`${p}.downsamplers.0.conv`, out, out, 3);
      skips.push(out);
    }
    prev = out;
  }
  if (cfg.midBlockType) {
    const c = ch[n - 1]!;
    t.resnet('mid_block.resnets.0', c, c, temb);
    t.transformer2D('mid_block.attentions.0', c, c, cfg.crossAttentionDim, layers[n - 1]!, cfg.useLinearProjection);
    t.resnet('mid_block.resnets.1', c, c, temb);
  }
  return skips;
}

/** The state dict of diffusers' UNet2DConditionModel for this config. */
export function unetWeightTable(cfg: UNet2DConditionConfig): WeightTable {
  const t = new TableBuilder();
  const ch = cfg.blockOutChannels;
  const n = ch.length;
  const temb = ch[0]! * 4;
  const skips = unetEncoder(t, cfg);
  let prev = ch[n - 1]!;
  const rch = [...ch].reverse();
  const rLayers = [...cfg.transformerLayersPerBlock].reverse();
  for (let i = 0; i < n; i++) {
    const out = rch[i]!;
    const p = `up_blocks.${i}`;
    for (let j = 0; j <= cfg.layersPerBlock; j++) {
      const skip = skips.pop()!;
      t.resnet(`${p}.resnets.${j}`, prev + skip, out, temb);
      if (cfg.upBlockTypes[i] === 'CrossAttnUpBlock2D') t.transformer2D(`${p}.attentions.${j}`, out, out, cfg.crossAttentionDim, rLayers[i]!, cfg.useLinearProjection);
      prev = out;
    }
    if (i < n - 1) t.conv(`${p}.upsamplers.0.conv`, out, out, 3);
  }
  t.norm('conv_norm_out', ch[0]!);
  t.conv('conv_out', ch[0]!, cfg.outChannels, 3);
  return t.table;
}

/**
 * The state dict of diffusers' ControlNetModel: the UNet's encoder, the condition-image embedding
 * (ControlNetConditioningEmbedding) and the zero convs (1x1) for every skip and the mid block. diffusers
 * zero-initialises conv_out and the zero convs; here they are random like the rest, so the residuals
 * the UNet adds are not all zero (the work is the same either way).
 */
export function controlNetWeightTable(cfg: ControlNetConfig): WeightTable {
  const t = new TableBuilder();
  const skips = unetEncoder(t, cfg);
  const e = cfg.conditioningEmbeddingOutChannels;
  const p = 'controlnet_cond_embedding';
  t.conv(`${p}.conv_in`, cfg.conditioningChannels, e[0]!, 3);
  for (let i = 0; i < e.length - 1; i++) {
    t.conv(`${p}.blocks.${2 * i}`, e[i]!, e[i]!, 3);
    t.conv(`${p}.blocks.${2 * i + 1}`, e[i]!, e[i + 1]!, 3);
  }
  t.conv(`${p}.conv_out`, e[e.length - 1]!, cfg.blockOutChannels[0]!, 3);
  skips.forEach((c, k) => t.conv(`controlnet_down_blocks.${k}`, c, c, 1));
  const mid = cfg.blockOutChannels[cfg.blockOutChannels.length - 1]!;
  t.conv('controlnet_mid_block', mid, mid, 1);
  return t.table;
}

/** The state dict of diffusers' AutoencoderKL (encoder, decoder, quant convs) for this config. */
export function vaeWeightTable(cfg: AutoencoderKLConfig): WeightTable {
  const t = new TableBuilder();
  const ch = cfg.blockOutChannels;
  const n = ch.length;
  const last = ch[n - 1]!;
  const midBlock = (p: string, c: number): void => {
    t.resnet(`${p}.resnets.0`, c, c, 0);
    if (cfg.midBlockAddAttention) {
      t.norm(`${p}.attentions.0.group_norm`, c);
      t.attention(`${p}.attentions.0`, c, c, c, true);
    }
    t.resnet(`${p}.resnets.1`, c, c, 0);
  };
  // Encoder: DownEncoderBlock2D x n (layers_per_block resnets each), mid block, 2 * latent moments.
  t.conv('encoder.conv_in', cfg.inChannels, ch[0]!, 3);
  let prev = ch[0]!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < cfg.layersPerBlock; j++) t.resnet(`encoder.down_blocks.${i}.resnets.${j}`, j === 0 ? prev : ch[i]!, ch[i]!, 0);
    if (i < n - 1) t.conv(`encoder.down_blocks.${i}.downsamplers.0.conv`, ch[i]!, ch[i]!, 3);
    prev = ch[i]!;
  }
  midBlock('encoder.mid_block', last);
  t.norm('encoder.conv_norm_out', last);
  t.conv('encoder.conv_out', last, 2 * cfg.latentChannels, 3);
  if (cfg.useQuantConv) t.conv('quant_conv', 2 * cfg.latentChannels, 2 * cfg.latentChannels, 1);
  if (cfg.usePostQuantConv) t.conv('post_quant_conv', cfg.latentChannels, cfg.latentChannels, 1);
  // Decoder: mid block, UpDecoderBlock2D x n (layers_per_block + 1 resnets each).
  const rch = [...ch].reverse();
  t.conv('decoder.conv_in', cfg.latentChannels, rch[0]!, 3);
  midBlock('decoder.mid_block', rch[0]!);
  prev = rch[0]!;
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= cfg.layersPerBlock; j++) t.resnet(`decoder.up_blocks.${i}.resnets.${j}`, j === 0 ? prev : rch[i]!, rch[i]!, 0);
    if (i < n - 1) t.conv(`decoder.up_blocks.${i}.upsamplers.0.conv`, rch[i]!, rch[i]!, 3);
    prev = rch[i]!;
  }
  t.norm('decoder.conv_norm_out', ch[0]!);
  t.conv('decoder.conv_out', ch[0]!, cfg.outChannels, 3);
  return t.table;
}

/** The state dict of transformers' CLIPTextModel for this config. */
export function clipTextWeightTable(cfg: CLIPTextConfig): WeightTable {
  const t = new TableBuilder();
  const d = cfg.hiddenSize;
  t.embedding('text_model.embeddings.token_embedding', cfg.vocabSize, d);
  t.embedding('text_model.embeddings.position_embedding', cfg.maxPositionEmbeddings, d);
  for (let i = 0; i < cfg.numHiddenLayers; i++) {
    const p = `text_model.encoder.layers.${i}`;
    for (const proj of ['k_proj', 'v_proj', 'q_proj', 'out_proj']) t.linear(`${p}.self_attn.${proj}`, d, d);
    t.norm(`${p}.layer_norm1`, d);
    t.linear(`${p}.mlp.fc1`, d, cfg.intermediateSize);
    t.linear(`${p}.mlp.fc2`, cfg.intermediateSize, d);
    t.norm(`${p}.layer_norm2`, d);
  }
  t.norm('text_model.final_layer_norm', d);
  return t.table;
}

/** FNV-1a of the key: each tensor gets its own deterministic stream. */
function seedOf(key: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h === 0 ? 0x9e3779b9 : h;
}

/** Uniform in ±bound from xorshift32 (fast, plenty for weights nobody looks at). */
export function fillUniform(out: Float32Array, bound: number, seed: number): void {
  let x = seed >>> 0 || 1;
  const scale = (2 * bound) / 4294967296;
  for (let i = 0; i < out.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = (x >>> 0) * scale - bound;
  }
}

/**
 * A TensorSource answering from a weight table with random data made on every read. Nothing is kept
 * (as SafetensorsSource keeps nothing): ONNX Runtime copies initializers into each session it builds,
 * so a JavaScript copy held here would add the whole model to every measure's peak RSS. The data of a
 * key is the same on every read (its stream is seeded by the key).
 */
export class RandomWeights implements TensorSource {
  /** Keys served so far (each counted once however often it was read). */
  private readonly served = new Set<string>();
  /** Seconds spent generating data (so the benchmark can keep it out of build times). */
  generateSeconds = 0;
  /** float32 bytes of the distinct keys served. */
  readBytes = 0;
  /** Reads in all (a key read by two graphs counts twice). */
  reads = 0;

  constructor(readonly origin: string, readonly table: WeightTable, readonly seed = 0) {}

  keys(): Iterable<string> { return this.table.keys(); }
  has(key: string): boolean { return this.table.has(key); }

  shape(key: string): readonly number[] { return this.spec(key).shape; }

  read(key: string): Tensor {
    const spec = this.spec(key);
    const start = performance.now();
    const data = new Float32Array(numel(spec.shape));
    if (spec.init.kind === 'ones') data.fill(1);
    else if (spec.init.kind === 'uniform') fillUniform(data, spec.init.bound, seedOf(key, this.seed));
    this.generateSeconds += (performance.now() - start) / 1000;
    this.reads++;
    if (!this.served.has(key)) {
      this.served.add(key);
      this.readBytes += data.byteLength;
    }
    return { shape: spec.shape, data };
  }

  /** Distinct keys served so far. */
  get readCount(): number { return this.served.size; }

  /** Keys of the table never read (with `prefix`: only those under it). */
  unread(prefix = ''): string[] {
    return [...this.table.keys()].filter((k) => k.startsWith(prefix) && !this.served.has(k));
  }

  /** Number of parameters in the table (a checkpoint's parameter count). */
  get parameterCount(): number {
    let n = 0;
    for (const s of this.table.values()) n += numel(s.shape);
    return n;
  }

  private spec(key: string): WeightSpec {
    const s = this.table.get(key);
    if (!s) throw new FileFormatError(this.origin, 'missing weight (not in the random-weight table)', key);
    return s;
  }
}

/**
 * Write a weight table as an F32 .safetensors file with the same data RandomWeights serves (same
 * per-key xorshift stream), row block by row block: at most `blockBytes` of weights are in memory.
 * Returns the bytes of tensor data written.
 */
export function writeRandomSafetensors(file: string, table: WeightTable, seed = 0, blockBytes = 4 << 20): number {
  const w = new SafetensorsWriter(file, [...table].map(([name, s]) => ({ name, shape: s.shape })));
  let total = 0;
  try {
    for (const [key, spec] of table) {
      for (const { row, data } of randomRowBlocks(key, spec, seed, blockBytes)) {
        w.writeRows(key, row, data);
        total += data.byteLength;
      }
    }
  } finally {
    w.close();
  }
  return total;
}

/**
 * The data RandomWeights serves for `key` (same per-key xorshift stream), in blocks of whole rows of at
 * most `blockBytes` (the block buffer is reused: consume each before asking for the next).
 */
export function* randomRowBlocks(key: string, spec: WeightSpec, seed = 0, blockBytes = 4 << 20): Generator<{ row: number; data: Float32Array }> {
  const rows = spec.shape[0] ?? 1;
  const rowLen = numel(spec.shape) / rows;
  const blockRows = Math.max(1, Math.floor(blockBytes / (rowLen * 4)));
  const buf = new Float32Array(Math.min(rows, blockRows) * rowLen);
  let x = seedOf(key, seed) >>> 0 || 1;
  const bound = spec.init.kind === 'uniform' ? spec.init.bound : 0;
  const scale = (2 * bound) / 4294967296;
  for (let r = 0; r < rows; r += blockRows) {
    const n = Math.min(blockRows, rows - r);
    const out = n * rowLen === buf.length ? buf : buf.subarray(0, n * rowLen);
    if (spec.init.kind === 'ones') out.fill(1);
    else if (spec.init.kind === 'zeros') out.fill(0);
    else {
      // fillUniform's stream, carried across blocks
      for (let i = 0; i < out.length; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        out[i] = (x >>> 0) * scale - bound;
      }
    }
    yield { row: r, data: out };
  }
}
