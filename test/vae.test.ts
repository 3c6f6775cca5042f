import { test } from 'node:test';
import path from 'node:path';
import { Graph } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { autoencoderConfig, vaeDecode, vaeEncode } from '../src/models/autoencoder-kl.js';
import { close, golden, MODELS, modelDir } from './helpers.js';

for (const m of MODELS) {
  test(`AutoencoderKL parity with diffusers (${m}): latent distribution and decoder`, async () => {
    const dir = path.join(modelDir(m), 'vae');
    const cfg = autoencoderConfig(Config.read(path.join(dir, 'config.json')));
    const vb = new WeightsView(openComponentWeights(dir));
    const gold = golden(m, 'vae');
    const g = new Graph();
    const image = g.input('image', gold.image!.shape);
    const z = g.input('z', gold.decoder_input_latents!.shape);
    const enc = vaeEncode(image, vb, cfg);
    g.output('moments', enc.moments);
    g.output('latent_dist.mean', enc.mean);
    g.output('latent_dist.logvar', enc.logvar);
    g.output('latent_dist.std', op.exp(op.mul(enc.logvar, 0.5)));
    g.output('scaled_mean', op.mul(enc.mean, cfg.scalingFactor));
    g.output('decoder_output', vaeDecode(z, vb, cfg));
    g.output('decoder_output_of_mean', vaeDecode(enc.mean, vb, cfg));
    const r = await runOnce(g, { image: gold.image!, z: gold.decoder_input_latents! });
    const errs: string[] = [];
    for (const k of Object.keys(r)) errs.push(`${k} ${close(r[k]!, gold[k]!, 1e-4, k).toExponential(1)}`);
    console.log(`${m} vae max abs err: ${errs.join(', ')}`);
  });
}
