/** unet_step: one SD 1.5 UNet call at batch 2 on [2, 4, 64, 64] latents = one CFG step at 512x512 (random weights). */
import { WeightsView } from '../../src/io/weights.js';
import { benchGraph, type GraphBench, type Measure, type Options } from '../harness.js';
import { RandomWeights, unetWeightTable } from '../random-weights.js';
import { sd15UnetConfig, unetFeeds, unetGraph } from '../sd15.js';

export function unetBench(opts: Options): GraphBench {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const s = opts.size, b = 2;
  return {
    measure: 'unet_step', key: `bench-unet:${s}`, sources: [rw], runs: opts.runs ?? 3, size: s,
    mustRead: [{ source: rw, prefix: '' }],
    build: () => unetGraph(cfg, new WeightsView(rw), b, s), // the plain (variant-free) UNet
    feeds: unetFeeds(cfg, b, s),
  };
}

export const unetStep: Measure = {
  name: 'unet_step',
  yardstick: { seconds: 18.2, target: 0.6, what: 'UNet CFG step at 512x512' },
  run: (opts) => benchGraph(unetBench(opts), opts),
};
