/** controlnet_step_ratio: one CFG step (2 rows) with an SD 1.5 ControlNet fused into the UNet graph against the plain step: `ratio` = controlnet / plain. */
import { ControlNet, controlNetFeeds, controlNetVariant, type PreparedControl } from '../../src/components/controlnet.js';
import { Config } from '../../src/io/config.js';
import { WeightsView } from '../../src/io/weights.js';
import { controlNetConfig } from '../../src/models/controlnet.js';
import { randomTensor, ratioResult, timeArms, type Arm, type Measure, type Options, type Result } from '../harness.js';
import { controlNetWeightTable, RandomWeights, unetWeightTable } from '../random-weights.js';
import { plainArm, SD15_CONTROLNET, sd15UnetConfig, unetFeeds, unetGraph } from '../sd15.js';

/** One SD 1.5 ControlNet fused into the UNet graph (text-to-image with --control), 2 rows, against the plain step. */
async function controlNetStepRatio(opts: Options): Promise<Result> {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const cnCfg = controlNetConfig(new Config('SD 1.5 ControlNet config.json (bench)', SD15_CONTROLNET));
  const cnw = new RandomWeights('random SD 1.5 ControlNet', controlNetWeightTable(cnCfg));
  const s = opts.size, b = 2, runs = opts.runs ?? 3;
  const image = randomTensor([1, 3, 8 * s, 8 * s], 6, 0.5);
  for (let i = 0; i < image.data.length; i++) image.data[i] += 0.5; // [0, 1] as a control image
  const controls: PreparedControl[] = [{ net: new ControlNet(cnCfg, new WeightsView(cnw), 'bench-controlnet'), image, scale: 1 }];
  const variant = controlNetVariant(controls)!;
  const arms: Arm[] = [
    {
      label: 'controlnet', key: `bench-unet-cn:${s}:${variant.key}`, rows: b, sources: [rw, cnw],
      mustRead: [{ source: rw, prefix: '' }, { source: cnw, prefix: '' }],
      build: () => unetGraph(cfg, new WeightsView(rw), b, s, variant),
      feeds: { controlnet: { ...unetFeeds(cfg, b, s), ...controlNetFeeds(controls, () => 1, b) } },
    },
    plainArm(cfg, rw, s),
  ];
  const timed = await timeArms('controlnet_step_ratio', arms, runs, opts);
  return ratioResult('controlnet_step_ratio', timed, arms, 'controlnet', runs, opts, {
    params: cnw.parameterCount,
    note: `one SD 1.5 ControlNet (${(cnw.parameterCount / 1e6).toFixed(0)} M parameters) in the UNet graph, CFG (2 rows) vs the plain CFG step; params = the ControlNet's`,
  });
}

export const controlnetStepRatio: Measure = { name: 'controlnet_step_ratio', run: controlNetStepRatio };
