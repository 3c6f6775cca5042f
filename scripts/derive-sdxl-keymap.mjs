#!/usr/bin/env node
// Derives test/fixtures/keymaps/sdxl-tiny.json (the SDXL single-file key map of tiny-sdxl) from tables that are
// diffusers' own output, NOT from src/io/original-keymap.ts (needs `tsc` first, only to list the folder's keys):
// - UNet: the block positions of diffusers' convert_diffusers_to_original_sdxl.py (down_blocks.i.resnets.j ->
//   input_blocks.3i+j+1.0, attentions -> .1, downsampler -> input_blocks.3(i+1).0.op, up_blocks.i.resnets.j ->
//   output_blocks.3i+j.0, attentions -> .1, upsampler -> output_blocks.3i+2.(1 without attention, else 2),
//   mid -> middle_block.0/1/2, add_embedding.linear_1/2 -> label_emb.0.0/0.2); the names INSIDE each module
//   (in_layers.0 = norm1, ...) are learned from sd1-tiny.json (diffusers' converted tiny-sd15, paired by values),
//   and the positions are checked to reproduce sd1-tiny.json's UNet rows exactly on tiny-sd15 before use.
// - VAE: sd1-tiny.json's rows (same VAE layout). Text encoder 1: sd1-tiny.json's rows under
//   conditioner.embedders.0.transformer. Text encoder 2: sd2-openclip-tiny.json's rows (q/k/v row blocks)
//   under conditioner.embedders.1.model., plus text_projection (stored transposed in the original).
import fs from 'node:fs';
import path from 'node:path';
import { openComponentWeights } from '../dist/src/io/weights.js';

const FX = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../test/fixtures');
const SD1 = JSON.parse(fs.readFileSync(path.join(FX, 'keymaps/sd1-tiny.json'), 'utf8')).entries;
const SD2 = JSON.parse(fs.readFileSync(path.join(FX, 'keymaps/sd2-openclip-tiny.json'), 'utf8')).entries;
const keys = (m, c) => [...openComponentWeights(path.join(FX, 'models', m, c)).keys()];
const cfg = (m) => JSON.parse(fs.readFileSync(path.join(FX, 'models', m, 'unet/config.json'), 'utf8'));
const U = 'model.diffusion_model.';

// Names inside modules, from diffusers' converted tiny-sd15: resnet parts (norm1 <-> in_layers.0, ...).
const inner = new Map();
for (const [o, c, d] of SD1) {
  if (c !== 'unet') continue;
  const m = /\.resnets\.\d+\.(.+)$/.exec(d);
  const n = /^model\.diffusion_model\.(?:input_blocks\.\d+\.0|output_blocks\.\d+\.0|middle_block\.[02])\.(.+)$/.exec(o);
  if (m && n) inner.set(m[1], n[1]);
}

function modulePairs(c) {
  const levels = c.block_out_channels.length, lpb = c.layers_per_block;
  const downAttn = c.down_block_types.map((t) => t.startsWith('CrossAttn')), upAttn = c.up_block_types.map((t) => t.startsWith('CrossAttn'));
  const p = [['time_embed.0', 'time_embedding.linear_1'], ['time_embed.2', 'time_embedding.linear_2'], ['input_blocks.0.0', 'conv_in'],
    ['out.0', 'conv_norm_out'], ['out.2', 'conv_out'], ['label_emb.0.0', 'add_embedding.linear_1'], ['label_emb.0.2', 'add_embedding.linear_2'],
    ['middle_block.0', 'mid_block.resnets.0', 'res'], ['middle_block.1', 'mid_block.attentions.0'], ['middle_block.2', 'mid_block.resnets.1', 'res']];
  for (let i = 0; i < levels; i++) {
    for (let j = 0; j < lpb; j++) {
      p.push([`input_blocks.${(lpb + 1) * i + j + 1}.0`, `down_blocks.${i}.resnets.${j}`, 'res']);
      if (downAttn[i]) p.push([`input_blocks.${(lpb + 1) * i + j + 1}.1`, `down_blocks.${i}.attentions.${j}`]);
    }
    if (i < levels - 1) p.push([`input_blocks.${(lpb + 1) * (i + 1)}.0.op`, `down_blocks.${i}.downsamplers.0.conv`]);
    for (let j = 0; j < lpb + 1; j++) {
      p.push([`output_blocks.${(lpb + 1) * i + j}.0`, `up_blocks.${i}.resnets.${j}`, 'res']);
      if (upAttn[i]) p.push([`output_blocks.${(lpb + 1) * i + j}.1`, `up_blocks.${i}.attentions.${j}`]);
    }
    if (i < levels - 1) p.push([`output_blocks.${(lpb + 1) * i + lpb}.${upAttn[i] ? 2 : 1}.conv`, `up_blocks.${i}.upsamplers.0.conv`]);
  }
  return p;
}

function unetRows(m) {
  const pairs = modulePairs(cfg(m));
  return keys(m, 'unet').map((d) => {
    const hit = pairs.filter(([, dp]) => d.startsWith(`${dp}.`)).sort((a, b) => b[1].length - a[1].length)[0];
    if (!hit) throw new Error(`${m}: no module for ${d}`);
    let rest = d.slice(hit[1].length + 1);
    if (hit[2] === 'res') {
      const part = [...inner.keys()].find((k) => rest === k || rest.startsWith(`${k}`));
      if (part === undefined) throw new Error(`${m}: no resnet part for ${d}`);
      rest = inner.get(part) + rest.slice(part.length);
    }
    return [`${U}${hit[0]}.${rest}`, 'unet', d];
  });
}

// The positions must reproduce diffusers' own tiny-sd15 conversion exactly.
const want = SD1.filter((e) => e[1] === 'unet').map((e) => e.join(' ')).sort();
const got = unetRows('tiny-sd15').map((e) => e.join(' ')).sort();
if (want.join('\n') !== got.join('\n')) throw new Error(`block positions do not reproduce sd1-tiny.json: ${got.filter((g) => !want.includes(g)).slice(0, 5).join('; ')}`);

const rows = [
  ...unetRows('tiny-sdxl').map(([o, c, d]) => [o, c, null, d]),
  ...SD1.filter((e) => e[1] === 'vae').map(([o, c, d]) => [o, c, null, d]),
  ...SD1.filter((e) => e[1] === 'text_encoder').map(([o, , d]) => [o.replace(/^cond_stage_model\.transformer\./, 'conditioner.embedders.0.transformer.'), 'text_encoder', null, d]),
  ...SD2.map(([o, part, d]) => [o.replace(/^cond_stage_model\.model\./, 'conditioner.embedders.1.model.'), 'text_encoder_2', part, d]),
  ['conditioner.embedders.1.model.text_projection', 'text_encoder_2', 'T', 'text_projection.weight'],
];
for (const c of ['unet', 'vae', 'text_encoder', 'text_encoder_2']) {
  const have = rows.filter((r) => r[1] === c).map((r) => r[3]).sort(), all = keys('tiny-sdxl', c).sort();
  if (have.join() !== all.join()) throw new Error(`${c}: table and tiny-sdxl keys differ`);
}
rows.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : (a[2] ?? -1) - (b[2] ?? -1)));
const out = {
  source: 'derived by scripts/derive-sdxl-keymap.mjs: diffusers v0.30.3 convert_diffusers_to_original_sdxl.py block positions (checked to reproduce sd1-tiny.json, diffusers\' own conversion of tiny-sd15), module-inner names from sd1-tiny.json, VAE / text encoder 1 from sd1-tiny.json, OpenCLIP text encoder 2 from sd2-openclip-tiny.json',
  columns: ['original key', 'component', 'q/k/v row block (0/1/2) of a fused in_proj, "T" = stored transposed, null = as is', 'diffusers key'],
  entries: rows,
};
fs.writeFileSync(path.join(FX, 'keymaps/sdxl-tiny.json'), `{\n  "source": ${JSON.stringify(out.source)},\n  "columns": ${JSON.stringify(out.columns)},\n  "entries": [\n${rows.map((r) => `    ${JSON.stringify(r)}`).join(',\n')}\n  ]\n}\n`);
console.log(`${rows.length} rows (${rows.filter((r) => r[1] === 'unet').length} UNet)`);
