/** Prompt -> embeddings: the CLIP tokenizer and CLIPTextModel of a checkpoint, compiled per batch size. */
import { Graph } from '../graph/ir.js';
import { compile } from '../graph/session.js';
import type { CLIPTokenizer } from '../io/clip-tokenizer.js';
import type { WeightsView } from '../io/weights.js';
import { clipTextModel, poolIndex, type CLIPTextConfig } from '../models/clip.js';
import { InputError } from '../errors.js';
import type { Tensor } from '../tensor.js';

export interface TextEmbeddings {
  /** [B, 77, D]: final_layer_norm of the last hidden state (or of an earlier one with clip skip). */
  readonly lastHiddenState: Tensor;
  /** [B, D]: final-layer hidden state at the end-of-text token. */
  readonly poolerOutput: Tensor;
  /** Prompts that were longer than the model's 77 tokens and were truncated (diffusers warns likewise). */
  readonly truncated: readonly string[];
}

export class TextEncoder {
  constructor(
    readonly tokenizer: CLIPTokenizer,
    readonly config: CLIPTextConfig,
    readonly weights: WeightsView,
    /** Identifies the weights in the session cache. */
    readonly id: string,
    /** CLIPTextModelWithProjection's `text_projection` (SDXL's second encoder), if any. */
    readonly projection?: WeightsView,
  ) {}

  /**
   * What SDXL takes from an encoder: the raw hidden_states[-(fromEnd)] (no final layer norm; 2 = the
   * penultimate layer) and the pooled output (final layer norm at the end-of-text token), projected by
   * text_projection when the encoder has one (`text_embeds`).
   */
  async encodeHidden(prompts: readonly string[], fromEnd: number): Promise<{ hiddenState: Tensor; pooled: Tensor; truncated: readonly string[] }> {
    const layers = this.config.numHiddenLayers;
    if (!Number.isInteger(fromEnd) || fromEnd < 1 || fromEnd > layers + 1) throw new InputError(`--clip-skip must be an integer in [0, ${layers - 1}], got ${fromEnd - 2}`);
    const encodings = prompts.map((p) => this.tokenizer.encode(p));
    const len = this.tokenizer.modelMaxLength;
    const b = prompts.length;
    const d = this.config.hiddenSize;
    const proj = this.projection ? { dim: this.config.projectionDim ?? this.projection.shape('weight')[0]!, vb: this.projection } : undefined;
    const session = await compile(`text-hidden:${this.id}:${b}x${len}:from-end${fromEnd}`, () => {
      const g = new Graph('clip_text_hidden');
      const ids = g.input('input_ids', [b, len], 'int64');
      const out = clipTextModel(ids, this.weights, this.config);
      g.output('hidden_state', out.hiddenStates[out.hiddenStates.length - fromEnd]!);
      g.output('final', out.lastHiddenState);
      return g;
    });
    const r = await session.run({ input_ids: { int64: encodings.flatMap((e) => e.input_ids), shape: [b, len] } });
    const final = r.final!;
    const pooledRows = encodings.map((e, i) => {
      const at = poolIndex(e.input_ids, this.config.eosTokenId);
      return final.data.subarray((i * len + at) * d, (i * len + at + 1) * d);
    });
    let pooled: Tensor = { shape: [b, d], data: new Float32Array(b * d) };
    pooledRows.forEach((row, i) => pooled.data.set(row, i * d));
    if (proj) {
      // text_projection (Linear, no bias) on the pooled rows, float32 accumulation.
      const w = proj.vb.get('weight', [proj.dim, d]).data;
      const out = new Float32Array(b * proj.dim);
      for (let i = 0; i < b; i++) for (let o = 0; o < proj.dim; o++) {
        let acc = 0;
        for (let k = 0; k < d; k++) acc = Math.fround(acc + Math.fround(pooled.data[i * d + k]! * w[o * d + k]!));
        out[i * proj.dim + o] = acc;
      }
      pooled = { shape: [b, proj.dim], data: out };
    }
    return { hiddenState: r.hidden_state!, pooled, truncated: prompts.filter((_, i) => encodings[i]!.truncated) };
  }

  /** Embeddings of each prompt; `clipSkip` N uses hidden_states[-(N+1)] through the final layer norm (diffusers' clip_skip). */
  async encode(prompts: readonly string[], opts: { clipSkip?: number } = {}): Promise<TextEmbeddings> {
    const clipSkip = opts.clipSkip ?? 0;
    if (!Number.isInteger(clipSkip) || clipSkip < 0 || clipSkip >= this.config.numHiddenLayers) {
      throw new InputError(`--clip-skip must be an integer in [0, ${this.config.numHiddenLayers - 1}], got ${clipSkip}`);
    }
    const encodings = prompts.map((p) => this.tokenizer.encode(p));
    const len = this.tokenizer.modelMaxLength;
    const b = prompts.length;
    const session = await compile(`text:${this.id}:${b}x${len}:skip${clipSkip}`, () => {
      const g = new Graph('clip_text');
      const ids = g.input('input_ids', [b, len], 'int64');
      const out = clipTextModel(ids, this.weights, this.config);
      const states = out.hiddenStates;
      g.output('last_hidden_state', clipSkip === 0 ? out.lastHiddenState : out.finalLayerNorm(states[states.length - 1 - clipSkip]!));
      g.output('final', out.lastHiddenState);
      return g;
    });
    const r = await session.run({ input_ids: { int64: encodings.flatMap((e) => e.input_ids), shape: [b, len] } });
    const final = r.final!;
    const d = this.config.hiddenSize;
    const pooled = new Float32Array(b * d);
    encodings.forEach((e, i) => {
      const at = poolIndex(e.input_ids, this.config.eosTokenId);
      pooled.set(final.data.subarray((i * len + at) * d, (i * len + at + 1) * d), i * d);
    });
    return {
      lastHiddenState: r.last_hidden_state!,
      poolerOutput: { shape: [b, d], data: pooled },
      truncated: prompts.filter((_, i) => encodings[i]!.truncated),
    };
  }
}
