/** Random weights for the tiny VAE (TAESD, diffusers AutoencoderTiny): its state dict for a config. */
import type { Json } from '../src/io/config.js';
import type { AutoencoderTinyConfig } from '../src/models/autoencoder-tiny.js';
import { TableBuilder, type WeightTable } from './random-weights.js';

/** madebyollin/taesd's config.json (SD 1.x/2.x): 4 stages of 64 channels, factor 8. */
export const TAESD_CONFIG: Record<string, Json> = {
  _class_name: 'AutoencoderTiny', act_fn: 'relu', in_channels: 3, out_channels: 3, latent_channels: 4,
  encoder_block_out_channels: [64, 64, 64, 64], decoder_block_out_channels: [64, 64, 64, 64],
  num_encoder_blocks: [1, 3, 3, 3], num_decoder_blocks: [3, 3, 3, 1],
  latent_magnitude: 3, latent_shift: 0.5, scaling_factor: 1.0, upsampling_scaling_factor: 2, upsample_fn: 'nearest',
};

/** encoder.layers.i / decoder.layers.i as the nn.Sequential numbers them (src/models/autoencoder-tiny.ts). */
export function taesdWeightTable(cfg: AutoencoderTinyConfig): WeightTable {
  const t = new TableBuilder();
  const block = (p: string, inC: number, outC: number): void => {
    t.conv(`${p}.conv.0`, inC, outC, 3);
    t.conv(`${p}.conv.2`, outC, outC, 3);
    t.conv(`${p}.conv.4`, outC, outC, 3);
    if (inC !== outC) t.conv(`${p}.skip`, inC, outC, 1, false);
  };
  let n = 0, c = cfg.inChannels;
  for (const [i, out] of cfg.encoderBlockOutChannels.entries()) {
    t.conv(`encoder.layers.${n++}`, c, out, 3, i === 0);
    c = out;
    for (let j = 0; j < cfg.numEncoderBlocks[i]!; j++) block(`encoder.layers.${n++}`, c, c);
  }
  t.conv(`encoder.layers.${n}`, c, cfg.latentChannels, 3);
  const ch = cfg.decoderBlockOutChannels;
  n = 0;
  t.conv(`decoder.layers.${n++}`, cfg.latentChannels, ch[0]!, 3);
  n++; // activation
  c = ch[0]!;
  for (const [i, out] of ch.entries()) {
    const last = i === ch.length - 1;
    for (let j = 0; j < cfg.numDecoderBlocks[i]!; j++) { block(`decoder.layers.${n++}`, c, out); c = out; }
    if (!last) n++; // upsample
    t.conv(`decoder.layers.${n++}`, c, last ? cfg.outChannels : c, 3, last);
  }
  return t.table;
}
