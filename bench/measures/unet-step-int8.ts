/** unet_step_int8: the SD 1.5 UNet CFG step (2 rows, 512x512 at --size 64) with --precision int8 against float32, alternating calls: `ratio` = int8 / fp32. */
import { WeightsView } from '../../src/io/weights.js';
import type { Arm, Measure, Options, Result } from '../harness.js';
import { describeInt8, int8Ratio } from '../int8.js';
import { RandomWeights, unetWeightTable } from '../random-weights.js';
import { plainArm, sd15UnetConfig, unetFeeds, unetGraph } from '../sd15.js';

async function runUnetStepInt8(opts: Options): Promise<Result> {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const s = opts.size, b = 2;
  const int8: Arm = {
    label: 'int8', key: `bench-unet-int8:${s}`, rows: b, sources: [rw], mustRead: [{ source: rw, prefix: '' }],
    build: () => unetGraph(cfg, new WeightsView(rw), b, s, undefined, 'int8'),
    feeds: { int8: unetFeeds(cfg, b, s) },
  };
  return int8Ratio('unet_step_int8', [int8, plainArm(cfg, rw, s)], 'int8', opts,
    'SD 1.5 UNet CFG step (2 rows), --precision int8 vs float32, alternating calls; rel_error = ||int8 - fp32|| / ||fp32|| of one call (random weights)', 0.5);
}

export const unetStepInt8: Measure = { name: 'unet_step_int8', ratioTarget: 0.5, run: runUnetStepInt8, describe: describeInt8('UNet CFG step') };
