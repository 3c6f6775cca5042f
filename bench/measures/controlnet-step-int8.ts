/** controlnet_step_int8: a CFG step with an SD 1.5 ControlNet fused into the UNet graph, --precision int8 against float32 (alternating): `ratio` = int8 / fp32. */
import { ControlNet, controlNetFeeds, controlNetVariant, type PreparedControl } from '../../src/components/controlnet.js';
import { Config } from '../../src/io/config.js';
import { WeightsView } from '../../src/io/weights.js';
import { controlNetConfig } from '../../src/models/controlnet.js';
import { randomTensor, type Arm, type Measure, type Options, type Result } from '../harness.js';
import { describeInt8, int8Ratio } from '../int8.js';
import { controlNetWeightTable, RandomWeights, unetWeightTable } from '../random-weights.js';
import { SD15_CONTROLNET, sd15UnetConfig, unetFeeds, unetGraph } from '../sd15.js';

async function controlNetStepInt8(opts: Options): Promise<Result> {
  const cfg = sd15UnetConfig();
  const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
  const cnCfg = controlNetConfig(new Config('SD 1.5 ControlNet config.json (bench)', SD15_CONTROLNET));
  const cnw = new RandomWeights('random SD 1.5 ControlNet', controlNetWeightTable(cnCfg));
  const s = opts.size, b = 2;
  const image = randomTensor([1, 3, 8 * s, 8 * s], 6, 0.5);
  for (let i = 0; i < image.data.length; i++) image.data[i] += 0.5; // [0, 1] as a control image
  const controls: PreparedControl[] = [{ net: new ControlNet(cnCfg, new WeightsView(cnw), 'bench-controlnet'), image, scale: 1 }];
  const variant = controlNetVariant(controls)!;
  const feeds = { ...unetFeeds(cfg, b, s), ...controlNetFeeds(controls, () => 1, b) };
  const arm = (p: 'int8' | 'fp32'): Arm => ({
    label: p, key: `bench-unet-cn-${p}:${s}:${variant.key}`, rows: b, sources: [rw, cnw],
    build: () => unetGraph(cfg, new WeightsView(rw), b, s, variant, p),
    feeds: { [p]: feeds },
  });
  return int8Ratio('controlnet_step_int8', [arm('int8'), arm('fp32')], 'int8', opts,
    'SD 1.5 UNet + one ControlNet in one graph, CFG (2 rows), --precision int8 vs float32, alternating calls (random weights)', 0.5);
}

export const controlnetStepInt8: Measure = { name: 'controlnet_step_int8', ratioTarget: 0.5, run: controlNetStepInt8, describe: describeInt8('ControlNet CFG step') };
