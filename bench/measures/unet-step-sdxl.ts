/**
 * unet_step_sdxl: SDXL UNet CFG step (batch 2) at latent 2 x --size (128 = 1024x1024 px by default), random
 * weights. Heavy: about 10 GiB of weights.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Config } from '../../src/io/config.js';
import { openComponentWeights, WeightsView } from '../../src/io/weights.js';
import { unet2DConditionModel, unetConfig } from '../../src/models/unet2d-condition.js';
import { benchGraph, log, randomTensor, ShapeGraph, type GraphBench, type Measure, type Options, type Result } from '../harness.js';
import { unetWeightTable, writeRandomSafetensors } from '../random-weights.js';
import { SDXL_UNET, unetFeeds } from '../sd15.js';

/**
 * SDXL UNet CFG step (batch 2) at latent 2 x --size (128 = 1024x1024 px by default), random weights.
 * The 10 GiB of weights are streamed to a temporary F32 .safetensors file and read by ONNX Runtime from
 * there (as from a real checkpoint), so the process holds one copy (ORT's), not two.
 */
function unetSdxlBench(opts: Options): { bench: GraphBench; cleanup: () => void } {
  const cfg = unetConfig(new Config('SDXL unet/config.json (bench)', SDXL_UNET));
  const s = opts.size * 2, b = 2;
  const pooled = cfg.addition!.inputDim - 6 * cfg.addition!.timeEmbedDim;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-bench-sdxl-'));
  log(`unet_step_sdxl: writing random weights to ${dir}`);
  writeRandomSafetensors(path.join(dir, 'diffusion_pytorch_model.safetensors'), unetWeightTable(cfg));
  const weights = new WeightsView(openComponentWeights(dir));
  const px = s * 8;
  const cleanup = (): void => fs.rmSync(dir, { recursive: true, force: true });
  // a killed run (timeout) must not leave 10 GiB behind in the temp folder
  process.once('SIGTERM', () => { cleanup(); process.exit(143); });
  return {
    cleanup,
    bench: {
      measure: 'unet_step_sdxl', key: `bench-unet-sdxl:${s}`, sources: [], runs: opts.runs ?? 1, size: s,
      build: () => {
        const g = new ShapeGraph('unet');
        const x = g.input('sample', [b, cfg.inChannels, s, s]);
        const t = g.input('timestep', [b]);
        const c = g.input('encoder_hidden_states', [b, 77, cfg.crossAttentionDim]);
        const addedCond = { textEmbeds: g.input('text_embeds', [b, pooled]), timeIds: g.input('time_ids', [b, 6]) };
        g.output('noise_pred', unet2DConditionModel({ sample: x, timestep: t, encoderHiddenStates: c, addedCond }, weights, cfg));
        return g;
      },
      feeds: {
        ...unetFeeds(cfg, b, s),
        text_embeds: randomTensor([b, pooled], 3),
        time_ids: { shape: [b, 6], data: Float32Array.from([px, px, 0, 0, px, px, px, px, 0, 0, px, px]) },
      },
    },
  };
}

export const unetStepSdxl: Measure = {
  name: 'unet_step_sdxl',
  async run(opts): Promise<Result> {
    const x = unetSdxlBench(opts);
    try { return await benchGraph(x.bench, opts); } finally { x.cleanup(); }
  },
};
