/** vae_decode_int8: the SD 1.5 VAE decode of a [1, 4, 64, 64] latent with --precision int8 against float32 (alternating): `ratio` = int8 / fp32. */
import * as op from '../../src/graph/ops.js';
import { usePrecision } from '../../src/graph/quantize.js';
import { WeightsView } from '../../src/io/weights.js';
import { vaeDecode } from '../../src/models/autoencoder-kl.js';
import { randomTensor, ShapeGraph, type Arm, type Measure, type Options, type Result } from '../harness.js';
import { describeInt8, int8Ratio } from '../int8.js';
import { RandomWeights, vaeWeightTable } from '../random-weights.js';
import { sd15VaeConfig } from '../sd15.js';

async function runVaeDecodeInt8(opts: Options): Promise<Result> {
  const cfg = sd15VaeConfig();
  const rw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(cfg));
  const s = opts.size, shape = [1, cfg.latentChannels, s, s];
  const feeds = { latents: randomTensor(shape, 3) };
  // as src/components/vae.ts decode builds it
  const arm = (p: 'int8' | 'fp32'): Arm => ({
    label: p, key: `bench-vae-dec-${p}:${s}`, rows: 1, sources: [rw],
    build: () => {
      const g = usePrecision(new ShapeGraph('vae_decoder'), p);
      g.output('image', vaeDecode(op.div(g.input('latents', shape), cfg.scalingFactor), new WeightsView(rw), cfg));
      return g;
    },
    feeds: { [p]: feeds },
  });
  return int8Ratio('vae_decode_int8', [arm('int8'), arm('fp32')], 'int8', opts,
    'SD 1.5 VAE decode of one 64x64 latent (512x512 image at --size 64), --precision int8 vs float32, alternating calls (random weights)', 0.5);
}

export const vaeDecodeInt8: Measure = { name: 'vae_decode_int8', ratioTarget: 0.5, run: runVaeDecodeInt8, describe: describeInt8('VAE decode') };
