/**
 * Original-layout ControlNet files as real-size SD 1.5 / 2.1 HEADERS (sparse safetensors: only shapes), so the
 * inferred config is checked field by field against diffusers' ControlNetModel config of the released models
 * (lllyasviel sd15 / thibaud sd21: block_out_channels, conditioning_embedding_out_channels [16, 32, 96, 256], 8 heads
 * or 64-channel heads) and the refusals word for word. Milliseconds (mutation slice io-keymaps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { isOriginalControlNetFile, openOriginalControlNet } from '../src/io/original-controlnet.js';
import { ldmUnet, writeSparse, type Shapes } from './ldm-headers.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-cn-header-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;

/** The ControlNet half of an ldm UNet (input/middle blocks, time_embed) plus hint encoder and zero convs. */
function controlnet(ctxDim: number, linear: boolean, prefix = ''): Shapes {
  const unet: Shapes = {};
  ldmUnet(unet, ctxDim, linear);
  const out: Shapes = {};
  for (const [k, s] of Object.entries(unet)) {
    const r = k.slice('model.diffusion_model.'.length);
    if (/^(input_blocks|middle_block|time_embed)\./.test(r)) out[prefix + r] = s;
  }
  const hint = [[16, 3], [16, 16], [32, 16], [32, 32], [96, 32], [96, 96], [256, 96], [320, 256]];
  hint.forEach(([o, i], j) => { out[`${prefix}input_hint_block.${2 * j}.weight`] = [o!, i!, 3, 3]; out[`${prefix}input_hint_block.${2 * j}.bias`] = [o!]; });
  const ch = [320, 320, 320, 320, 640, 640, 640, 1280, 1280, 1280, 1280, 1280];
  ch.forEach((c, j) => { out[`${prefix}zero_convs.${j}.0.weight`] = [c, c, 1, 1]; out[`${prefix}zero_convs.${j}.0.bias`] = [c]; });
  out[`${prefix}middle_block_out.0.weight`] = [1280, 1280, 1, 1];
  out[`${prefix}middle_block_out.0.bias`] = [1280];
  return out;
}
function file(shapes: Shapes, dir = tmp): string {
  const f = path.join(dir, `cn${n++}.safetensors`);
  writeSparse(f, shapes);
  return f;
}
const refused = (f: string, message: string, key?: string): void => assert.throws(() => openOriginalControlNet(f),
  (e: unknown) => e instanceof FileFormatError && e.message === `${f}${key !== undefined ? ` [${key}]` : ''}: ${message}`, message);

test('SD 1.5 / 2.1 ControlNet headers: the inferred config is diffusers\' ControlNetModel config', () => {
  const a = openOriginalControlNet(file(controlnet(768, false)));
  assert.deepEqual(a.config.raw, {
    _class_name: 'ControlNetModel', act_fn: 'silu', attention_head_dim: 8, block_out_channels: [320, 640, 1280, 1280], conditioning_channels: 3,
    conditioning_embedding_out_channels: [16, 32, 96, 256], controlnet_conditioning_channel_order: 'rgb', cross_attention_dim: 768,
    down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'], downsample_padding: 1, flip_sin_to_cos: true,
    freq_shift: 0, global_pool_conditions: false, in_channels: 4, layers_per_block: 2, mid_block_type: 'UNetMidBlock2DCrossAttn', norm_eps: 1e-5,
    norm_num_groups: 32, transformer_layers_per_block: 1, upcast_attention: false, use_linear_projection: false,
  });
  const keys = [...a.weights.keys()];
  assert.equal(keys.length, new Set(keys).size);
  assert.ok(keys.includes('controlnet_cond_embedding.conv_out.weight') && keys.includes('controlnet_cond_embedding.blocks.5.bias') && keys.includes('controlnet_down_blocks.11.weight'));
  assert.ok(!keys.some((k) => k.startsWith('up_blocks') || k.includes('output_blocks')));
  assert.deepEqual(a.weights.shape('controlnet_mid_block.weight'), [1280, 1280, 1, 1]);
  assert.deepEqual(a.weights.shape('down_blocks.2.downsamplers.0.conv.weight'), [1280, 1280, 3, 3]);
  assert.throws(() => a.weights.shape('nope.weight'), (e: unknown) => e instanceof FileFormatError && /\[nope\.weight\]: missing weight$/.test(e.message));
  const b = openOriginalControlNet(file(controlnet(1024, true, 'control_model.')));
  assert.deepEqual([b.config.raw.attention_head_dim, b.config.raw.cross_attention_dim, b.config.raw.use_linear_projection], [[5, 10, 20, 20], 1024, true]);
  assert.equal([...b.weights.keys()].length, keys.length);
});

test('a config.json beside the file wins; isOriginalControlNetFile; refusals name the file and key', () => {
  const dir = fs.mkdtempSync(path.join(tmp, 'beside-'));
  const f = file(controlnet(768, false), dir);
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify({ _class_name: 'ControlNetModel', attention_head_dim: 4 }));
  assert.equal(openOriginalControlNet(f).config.raw.attention_head_dim, 4);
  assert.equal(isOriginalControlNetFile(f), true);
  assert.equal(isOriginalControlNetFile(dir), false);
  const onlyHint = file({ 'input_hint_block.0.weight': [16, 3, 3, 3] });
  assert.equal(isOriginalControlNetFile(onlyHint), false);
  refused(onlyHint, 'not a ControlNet: expected input_hint_block.* and input_blocks.* tensors (original layout) or a diffusers ControlNet folder with config.json');
  const noHint = controlnet(768, false);
  for (const k of Object.keys(noHint)) if (k.startsWith('input_hint_block.6.')) delete noHint[k];
  const g = file(noHint);
  refused(g, 'input_hint_block convolutions at [0, 2, 4, 8, 10, 12, 14], expected 0, 2, 4, ...', 'input_hint_block');
  const gap = controlnet(768, false);
  for (const k of Object.keys(gap)) if (k.startsWith('input_blocks.6.')) delete gap[k];
  const h = file(gap);
  refused(h, 'unexpected ControlNet layout: 12 input blocks with downsamplers at [3, 9]', 'input_blocks');
  const noOut = controlnet(768, false);
  delete noOut['input_blocks.1.0.out_layers.3.weight'];
  const m = file(noOut);
  refused(m, 'missing tensor (needed to infer the ControlNet configuration)', 'input_blocks.1.0.out_layers.3.weight');
});
