/**
 * unet_rows_ratio: a plain UNet call on 3 rows against the same call on 2 rows (the plain CFG step). It is the
 * floor under vary_step_ratio (InDetail-IP's vary adds a third row): `ratio` = 3-row / 2-row, 1.5 if the
 * call's cost were linear in its rows. Timed calls alternate.
 */
import { WeightsView } from '../../src/io/weights.js';
import { ratioResult, timeArms, type Arm, type Measure, type Options, type Result } from '../harness.js';
import { RandomWeights, unetWeightTable } from '../random-weights.js';
import { plainArm, sd15UnetConfig, unetFeeds, unetGraph } from '../sd15.js';

export async function unetRowsRatio(opts: Options): Promise<Result> {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const s = opts.size, runs = opts.runs ?? 3;
  const arms: Arm[] = [
    { label: 'rows3', key: `bench-unet-rows3:${s}`, rows: 3, sources: [rw], build: () => unetGraph(cfg, new WeightsView(rw), 3, s), feeds: { rows3: unetFeeds(cfg, 3, s) } },
    plainArm(cfg, rw, s),
  ];
  const timed = await timeArms('unet_rows_ratio', arms, runs, opts);
  return ratioResult('unet_rows_ratio', timed, arms, 'rows3', runs, opts, {
    note: 'plain SD 1.5 UNet call on 3 rows vs 2 rows (same weights, no hooks): how far the call is from linear in its rows; vary_step_ratio sits on this floor',
  });
}

export const unetRowsRatioMeasure: Measure = { name: 'unet_rows_ratio', run: unetRowsRatio };
