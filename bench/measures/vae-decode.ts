/** vae_decode: one SD 1.5 VAE decode of a [1, 4, 64, 64] latent (random weights). */
import * as op from '../../src/graph/ops.js';
import { WeightsView } from '../../src/io/weights.js';
import { vaeDecode } from '../../src/models/autoencoder-kl.js';
import { benchGraph, randomTensor, ShapeGraph, type GraphBench, type Measure, type Options } from '../harness.js';
import { RandomWeights, vaeWeightTable } from '../random-weights.js';
import { sd15VaeConfig } from '../sd15.js';

export function vaeBench(opts: Options): GraphBench {
  const cfg = sd15VaeConfig();
  const rw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(cfg));
  const s = opts.size, shape = [1, cfg.latentChannels, s, s];
  return {
    measure: 'vae_decode', key: `bench-vae-dec:${s}`, sources: [rw], runs: opts.runs ?? 3, size: s,
    mustRead: [{ source: rw, prefix: 'decoder.' }, { source: rw, prefix: 'post_quant_conv.' }],
    // as src/components/vae.ts decode builds it
    build: () => {
      const g = new ShapeGraph('vae_decoder');
      const z = g.input('latents', shape);
      g.output('image', vaeDecode(op.div(z, cfg.scalingFactor), new WeightsView(rw), cfg));
      return g;
    },
    feeds: { latents: randomTensor(shape, 3) },
  };
}

export const vaeDecodeMeasure: Measure = {
  name: 'vae_decode',
  yardstick: { seconds: 14.7, target: 1.0, what: 'VAE decode 64x64 latent' },
  run: (opts) => benchGraph(vaeBench(opts), opts),
};
