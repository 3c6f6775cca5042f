/**
 * Original-layout ControlNet HEADERS of layouts the SD 1.5 / 2.1 header test does not build (sparse safetensors,
 * milliseconds): no attention at the first level with per-level transformer depths, one level without down-block
 * attention (cross_attention_dim from the mid block), layers_per_block 1, a hint encoder of conv_in + conv_out only
 * (diffusers' ControlNetConditioningEmbedding with one block_out_channels entry); and the layouts refused. Expectations
 * are diffusers' ControlNetModel config semantics (conditioning_embedding_out_channels = the hint convs' widths at
 * 0, 4, 8, ...; transformer_layers_per_block per level). Mutation slice io-keymaps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { openOriginalControlNet } from '../src/io/original-controlnet.js';
import { ldmUnetOf, writeSparse, type Shapes, type UnetSpec } from './ldm-headers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-cn-layouts-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function file(shapes: Shapes): string {
  const f = path.join(tmp, `cn${n++}.safetensors`);
  writeSparse(f, shapes);
  return f;
}
const refused = (f: string, message: string, key?: string): void => assert.throws(() => openOriginalControlNet(f),
  (e: unknown) => e instanceof FileFormatError && e.message === `${f}${key !== undefined ? ` [${key}]` : ''}: ${message}`, message);

/** The encoder half of an ldm UNet + a hint encoder with these block widths (conv_in, 2 convs per width step, conv_out) + zero convs. */
function controlnet(spec: UnetSpec, emb: number[]): Shapes {
  const unet: Shapes = {};
  ldmUnetOf(unet, spec);
  const out: Shapes = {};
  for (const [k, s] of Object.entries(unet)) {
    const r = k.slice('model.diffusion_model.'.length);
    if (/^(input_blocks|middle_block|time_embed)\./.test(r)) out[r] = s;
  }
  const convs: [number, number][] = [[emb[0]!, 3]];
  for (let i = 1; i < emb.length; i++) convs.push([emb[i - 1]!, emb[i - 1]!], [emb[i]!, emb[i - 1]!]);
  convs.push([spec.ch[0]!, emb[emb.length - 1]!]);
  convs.forEach(([o, i], j) => { out[`input_hint_block.${2 * j}.weight`] = [o, i, 3, 3]; out[`input_hint_block.${2 * j}.bias`] = [o]; });
  const blocks = Object.keys(out).filter((k) => k.startsWith('input_blocks.')).map((k) => Number(k.split('.')[1]));
  for (let j = 0; j <= Math.max(...blocks); j++) {
    const c = out[`input_blocks.${j}.0.out_layers.3.weight`]?.[0] ?? out[`input_blocks.${j}.0.op.weight`]?.[0] ?? spec.ch[0]!;
    out[`zero_convs.${j}.0.weight`] = [c, c, 1, 1]; out[`zero_convs.${j}.0.bias`] = [c];
  }
  const mid = spec.ch[spec.ch.length - 1]!;
  out['middle_block_out.0.weight'] = [mid, mid, 1, 1]; out['middle_block_out.0.bias'] = [mid];
  return out;
}

test('ControlNet layouts: per-level depths without first-level attention, one level, layers_per_block 1, a two-conv hint encoder', () => {
  const a = openOriginalControlNet(file(controlnet({ ch: [64, 128, 128], attn: [false, true, true], L: 2, ctx: 768, depth: [1, 2, 3] }, [16, 32, 96])));
  const ca = a.config.raw;
  assert.deepEqual([ca.block_out_channels, ca.down_block_types, ca.transformer_layers_per_block, ca.attention_head_dim, ca.cross_attention_dim,
    ca.layers_per_block, ca.conditioning_embedding_out_channels, ca.use_linear_projection, ca.in_channels, ca.conditioning_channels],
  [[64, 128, 128], ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], [1, 2, 3], 8, 768, 2, [16, 32, 96], false, 4, 3]);
  assert.ok(a.weights.has('down_blocks.2.attentions.1.transformer_blocks.2.attn1.to_q.weight'));
  assert.ok(a.weights.has('mid_block.attentions.0.transformer_blocks.2.norm3.bias'));
  assert.ok(!a.weights.has('down_blocks.0.attentions.0.norm.weight'));
  assert.deepEqual(a.weights.shape('controlnet_cond_embedding.conv_out.weight'), [64, 96, 3, 3]);
  assert.deepEqual(a.weights.shape('controlnet_cond_embedding.blocks.3.weight'), [96, 32, 3, 3]);
  assert.deepEqual(a.weights.shape('controlnet_down_blocks.8.weight'), [128, 128, 1, 1]);
  // one level without attention in the down block: cross-attention width and projection from the mid block
  const b = openOriginalControlNet(file(controlnet({ ch: [64], attn: [false], L: 2, ctx: 1024, linear: true }, [16])));
  const cb = b.config.raw;
  assert.deepEqual([cb.block_out_channels, cb.down_block_types, cb.layers_per_block, cb.cross_attention_dim, cb.use_linear_projection, cb.attention_head_dim,
    cb.conditioning_embedding_out_channels], [[64], ['DownBlock2D'], 2, 1024, true, 1, [16]]);
  assert.deepEqual([...b.weights.keys()].filter((k) => k.startsWith('controlnet_cond_embedding.')).sort(),
    ['controlnet_cond_embedding.conv_in.bias', 'controlnet_cond_embedding.conv_in.weight', 'controlnet_cond_embedding.conv_out.bias', 'controlnet_cond_embedding.conv_out.weight']);
  assert.equal(b.weights.has('down_blocks.0.downsamplers.0.conv.weight'), false);
  // every tensor of a ControlNet file is one diffusers weight: with 4 resnets a level, blocks 10.. and the downsampler at 10
  const wide = controlnet({ ch: [32, 64, 64], attn: [true, true, false], L: 4, ctx: 768 }, [16, 32]);
  const d = openOriginalControlNet(file(wide));
  assert.equal([...d.weights.keys()].length, Object.keys(wide).length);
  assert.deepEqual(d.weights.shape('down_blocks.1.downsamplers.0.conv.weight'), [64, 64, 3, 3]);
  assert.deepEqual(d.weights.shape('down_blocks.2.resnets.3.conv2.weight'), [64, 64, 3, 3]);
  assert.deepEqual(d.weights.shape('controlnet_down_blocks.14.weight'), [64, 64, 1, 1]);
  const c = openOriginalControlNet(file(controlnet({ ch: [64, 128], attn: [true, true], L: 1, ctx: 768 }, [16, 32])));
  assert.deepEqual([c.config.raw.layers_per_block, c.config.raw.block_out_channels], [1, [64, 128]]);
  assert.deepEqual(c.weights.shape('down_blocks.0.downsamplers.0.conv.weight'), [64, 64, 3, 3]);
  assert.deepEqual(c.weights.shape('down_blocks.1.resnets.0.conv_shortcut.weight'), [128, 64, 1, 1]);
});

test('ControlNet layouts refused: no resnet between downsamplers, uneven levels, a hint encoder of one conv', () => {
  const f = file({ 'input_blocks.0.0.weight': [64, 4, 3, 3], 'input_blocks.1.0.op.weight': [64, 64, 3, 3], 'input_blocks.2.0.op.weight': [64, 64, 3, 3],
    'input_hint_block.0.weight': [16, 3, 3, 3], 'input_hint_block.2.weight': [64, 16, 3, 3] });
  refused(f, 'unexpected ControlNet layout: 3 input blocks with downsamplers at [1, 2]', 'input_blocks');
  // Nine blocks and two downsamplers make three levels of three, but the second downsampler must then be block 6:
  // at block 5 the levels are uneven and block 5's weights would have no diffusers name.
  const uneven = file({ 'input_blocks.0.0.weight': [64, 4, 3, 3], 'input_blocks.3.0.op.weight': [64, 64, 3, 3], 'input_blocks.5.0.op.weight': [64, 64, 3, 3],
    'input_blocks.8.0.in_layers.2.weight': [64, 64, 3, 3], 'input_hint_block.0.weight': [16, 3, 3, 3], 'input_hint_block.2.weight': [64, 16, 3, 3] });
  refused(uneven, 'unexpected ControlNet layout: 9 input blocks with downsamplers at [3, 5]', 'input_blocks');
  const one = controlnet({ ch: [64, 128], attn: [true, true], L: 1, ctx: 768 }, [16, 32]);
  for (const k of Object.keys(one)) if (/^input_hint_block\.[1-9]/.test(k)) delete one[k];
  const g = file(one);
  refused(g, 'input_hint_block convolutions at [0], expected 0, 2, 4, ...', 'input_hint_block');
});
