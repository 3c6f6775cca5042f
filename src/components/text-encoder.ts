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
  ) {}

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
