/** text_encode: one CLIP ViT-L/14 text encoding of 2 prompts (77 tokens), random weights. */
import { WeightsView } from '../../src/io/weights.js';
import { CLIPTokenizer } from '../../src/io/clip-tokenizer.js';
import { clipTextModel } from '../../src/models/clip.js';
import { benchGraph, ShapeGraph, type GraphBench, type Measure, type Options } from '../harness.js';
import { clipTextWeightTable, RandomWeights } from '../random-weights.js';
import { sd15TextConfig } from '../sd15.js';

export function textBench(opts: Options): GraphBench {
  const cfg = sd15TextConfig();
  const rw = new RandomWeights('random CLIP ViT-L/14 text encoder', clipTextWeightTable(cfg));
  const tok = CLIPTokenizer.bundled();
  const prompts = ['', 'a photograph of an astronaut riding a horse on the moon, highly detailed, 8k'];
  const ids = prompts.flatMap((p) => tok.encode(p).input_ids);
  const shape = [prompts.length, tok.modelMaxLength];
  return {
    measure: 'text_encode', key: 'bench-text', sources: [rw], runs: opts.runs ?? 10,
    mustRead: [{ source: rw, prefix: '' }],
    // as src/components/text-encoder.ts builds it (clip skip 0)
    build: () => {
      const g = new ShapeGraph('clip_text');
      const out = clipTextModel(g.input('input_ids', shape, 'int64'), new WeightsView(rw), cfg);
      g.output('last_hidden_state', out.lastHiddenState);
      return g;
    },
    feeds: { input_ids: { int64: ids, shape } },
  };
}

export const textEncode: Measure = {
  name: 'text_encode',
  yardstick: { seconds: 0.74, what: 'CLIP text, 2 prompts' },
  run: (opts) => benchGraph(textBench(opts), opts),
};
