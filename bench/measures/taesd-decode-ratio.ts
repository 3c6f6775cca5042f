/** taesd_decode_ratio: one tiny-VAE (TAESD, 64 channels, 4 stages) decode of a [1, 4, 64, 64] latent against the full SD 1.5 VAE decode: `ratio` = TAESD / full VAE. */
import * as op from '../../src/graph/ops.js';
import { Config } from '../../src/io/config.js';
import { WeightsView } from '../../src/io/weights.js';
import { autoencoderTinyConfig, tinyDecode } from '../../src/models/autoencoder-tiny.js';
import { ratioResult, ShapeGraph, timeArms, type Arm, type Measure, type Options, type Result } from '../harness.js';
import { RandomWeights } from '../random-weights.js';
import { TAESD_CONFIG, taesdWeightTable } from '../taesd-weights.js';
import { vaeBench } from './vae-decode.js';

/** The tiny VAE's decode (src/components/vae-tiny.ts) against the full VAE's (vae_decode), same latent. */
async function taesdDecodeRatio(opts: Options): Promise<Result> {
  const tcfg = autoencoderTinyConfig(new Config('madebyollin/taesd config.json (bench)', TAESD_CONFIG));
  const trw = new RandomWeights('random TAESD', taesdWeightTable(tcfg));
  const full = vaeBench(opts);
  const shape = [1, tcfg.latentChannels, opts.size, opts.size];
  const arms: Arm[] = [
    {
      label: 'taesd', key: `bench-taesd-dec:${opts.size}`, rows: 1, sources: [trw], mustRead: [{ source: trw, prefix: 'decoder.' }],
      build: () => {
        const g = new ShapeGraph('taesd_decoder');
        g.output('image', tinyDecode(op.div(g.input('latents', shape), tcfg.scalingFactor), new WeightsView(trw), tcfg));
        return g;
      },
      feeds: { taesd: full.feeds },
    },
    { label: 'vae', key: full.key, rows: 1, sources: full.sources, mustRead: full.mustRead, build: full.build, feeds: { vae: full.feeds } },
  ];
  const runs = opts.runs ?? 3;
  const timed = await timeArms('taesd_decode_ratio', arms, runs, opts);
  return ratioResult('taesd_decode_ratio', timed, arms, 'taesd', runs, opts, {
    params: trw.parameterCount,
    note: `the TAESD decoder (TAESD: ${(trw.parameterCount / 1e6).toFixed(1)} M parameters, encoder + decoder) vs the SD 1.5 VAE decoder, one [1, 4, ${opts.size}, ${opts.size}] latent; baseline_* = the full VAE`,
  });
}

export const taesdDecodeRatioMeasure: Measure = { name: 'taesd_decode_ratio', run: taesdDecodeRatio };
