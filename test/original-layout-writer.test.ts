/**
 * toOriginalLayout (diffusers state dicts -> the original single-file layout) on small hand-made state dicts, checked
 * name by name against diffusers' conversion scripts (convert_diffusers_to_original_stable_diffusion.py and its SDXL
 * counterpart): the layout context read from the keys (layers per block, which up blocks have attention, VAE levels),
 * VAE attention Linear weights written as 1x1 convs, OpenCLIP q / k / v fused into in_proj in that row order,
 * SDXL's text_projection written transposed, position_ids buffers dropped, and the refusals. Milliseconds (mutation
 * slice io-keymaps).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { InputError } from '../src/errors.js';
import { layoutContextFromKeys, toOriginalLayout } from '../src/io/original-keymap.js';
import type { Tensor } from '../src/tensor.js';

let next = 1;
/** A tensor of this shape with values next, next + 1, ... (every value in a test unique). */
const t = (...shape: number[]): Tensor => {
  const n = shape.reduce((a, b) => a * b, 1);
  const data = Float32Array.from({ length: n }, (_, i) => next + i);
  next += n;
  return { shape, data };
};

test('layout context and names: resnets / attentions / samplers of a 2-level UNet and a 4-level VAE; 1x1-conv VAE attention', () => {
  const unet: Record<string, Tensor> = {
    'time_embedding.linear_1.weight': t(2, 2), 'conv_in.weight': t(2, 1, 1, 1),
    'down_blocks.0.resnets.0.norm1.weight': t(2), 'down_blocks.0.resnets.1.norm1.weight': t(2), 'down_blocks.0.downsamplers.0.conv.weight': t(2, 2, 1, 1),
    'down_blocks.1.attentions.1.proj_in.weight': t(2, 2), 'mid_block.resnets.1.conv2.bias': t(2),
    'up_blocks.0.resnets.2.conv_shortcut.weight': t(2, 4, 1, 1), 'up_blocks.0.upsamplers.0.conv.weight': t(2, 2, 1, 1),
    'up_blocks.1.attentions.2.proj_out.bias': t(2), 'up_blocks.1.upsamplers.0.conv.bias': t(2),
  };
  const vae: Record<string, Tensor> = {
    'encoder.down_blocks.0.resnets.0.conv1.weight': t(1), 'encoder.down_blocks.2.resnets.0.norm1.weight': t(1), 'encoder.down_blocks.3.resnets.1.conv_shortcut.weight': t(1),
    'encoder.down_blocks.1.downsamplers.0.conv.bias': t(1), 'decoder.up_blocks.0.resnets.2.norm1.bias': t(1), 'decoder.up_blocks.1.upsamplers.0.conv.weight': t(1),
    'encoder.mid_block.resnets.1.norm2.weight': t(1), 'decoder.conv_norm_out.bias': t(1), 'quant_conv.weight': t(1), 'post_quant_conv.bias': t(1),
    'decoder.mid_block.attentions.0.to_out.0.weight': t(2, 2), 'encoder.mid_block.attentions.0.to_q.weight': t(2, 2, 1, 1),
    'encoder.mid_block.attentions.0.group_norm.weight': t(2), 'encoder.mid_block.attentions.0.to_k.bias': t(2),
  };
  assert.deepEqual(layoutContextFromKeys({ unet, vae }), { layersPerBlock: 2, upBlockHasAttention: [false, true], vaeLevels: 4, textLayout: 'clip' });
  const text = { 'text_model.embeddings.position_ids': t(1, 3), 'text_model.final_layer_norm.bias': t(2) };
  const out = toOriginalLayout({ unet, vae, text_encoder: text });
  const U = 'model.diffusion_model.', V = 'first_stage_model.';
  const expected: [string, string, string][] = [
    ['unet', 'time_embedding.linear_1.weight', `${U}time_embed.0.weight`], ['unet', 'conv_in.weight', `${U}input_blocks.0.0.weight`],
    ['unet', 'down_blocks.0.resnets.0.norm1.weight', `${U}input_blocks.1.0.in_layers.0.weight`], ['unet', 'down_blocks.0.resnets.1.norm1.weight', `${U}input_blocks.2.0.in_layers.0.weight`],
    ['unet', 'down_blocks.0.downsamplers.0.conv.weight', `${U}input_blocks.3.0.op.weight`], ['unet', 'down_blocks.1.attentions.1.proj_in.weight', `${U}input_blocks.5.1.proj_in.weight`],
    ['unet', 'mid_block.resnets.1.conv2.bias', `${U}middle_block.2.out_layers.3.bias`], ['unet', 'up_blocks.0.resnets.2.conv_shortcut.weight', `${U}output_blocks.2.0.skip_connection.weight`],
    ['unet', 'up_blocks.0.upsamplers.0.conv.weight', `${U}output_blocks.2.1.conv.weight`], ['unet', 'up_blocks.1.attentions.2.proj_out.bias', `${U}output_blocks.5.1.proj_out.bias`],
    ['unet', 'up_blocks.1.upsamplers.0.conv.bias', `${U}output_blocks.5.2.conv.bias`],
    ['vae', 'encoder.down_blocks.0.resnets.0.conv1.weight', `${V}encoder.down.0.block.0.conv1.weight`],
    ['vae', 'encoder.down_blocks.2.resnets.0.norm1.weight', `${V}encoder.down.2.block.0.norm1.weight`],
    ['vae', 'encoder.down_blocks.3.resnets.1.conv_shortcut.weight', `${V}encoder.down.3.block.1.nin_shortcut.weight`],
    ['vae', 'encoder.down_blocks.1.downsamplers.0.conv.bias', `${V}encoder.down.1.downsample.conv.bias`],
    ['vae', 'decoder.up_blocks.0.resnets.2.norm1.bias', `${V}decoder.up.3.block.2.norm1.bias`],
    ['vae', 'decoder.up_blocks.1.upsamplers.0.conv.weight', `${V}decoder.up.2.upsample.conv.weight`],
    ['vae', 'encoder.mid_block.resnets.1.norm2.weight', `${V}encoder.mid.block_2.norm2.weight`], ['vae', 'decoder.conv_norm_out.bias', `${V}decoder.norm_out.bias`],
    ['vae', 'quant_conv.weight', `${V}quant_conv.weight`], ['vae', 'post_quant_conv.bias', `${V}post_quant_conv.bias`],
    ['vae', 'encoder.mid_block.attentions.0.group_norm.weight', `${V}encoder.mid.attn_1.norm.weight`], ['vae', 'encoder.mid_block.attentions.0.to_k.bias', `${V}encoder.mid.attn_1.k.bias`],
    ['text_encoder', 'text_model.final_layer_norm.bias', 'cond_stage_model.transformer.text_model.final_layer_norm.bias'],
  ];
  const parts: Record<string, Record<string, Tensor>> = { unet, vae, text_encoder: text };
  for (const [c, d, o] of expected) assert.equal(out[o], parts[c]![d], `${c} ${d} -> ${o}`);
  // VAE attention projections: Linear [C, C] -> conv [C, C, 1, 1] (same values); already 4-D stays as is
  const proj = out[`${V}decoder.mid.attn_1.proj_out.weight`]!;
  assert.deepEqual([proj.shape, proj.data], [[2, 2, 1, 1], vae['decoder.mid_block.attentions.0.to_out.0.weight']!.data]);
  assert.equal(out[`${V}encoder.mid.attn_1.q.weight`], vae['encoder.mid_block.attentions.0.to_q.weight']);
  assert.equal(Object.keys(out).length, expected.length + 2, 'position_ids (a buffer) is not written');
  assert.throws(() => toOriginalLayout({ unet: { ...unet, 'down_blocks.0.resnets.0.norm9.weight': t(2) } }),
    (e: unknown) => e instanceof InputError && e.message === 'toOriginalLayout: no original-layout name for unet tensor down_blocks.0.resnets.0.norm9.weight');
  assert.throws(() => toOriginalLayout({ vae: { ...vae, 'decoder.up_blocks.0.attentions.0.to_q.weight': t(2, 2) } }),
    (e: unknown) => e instanceof InputError && e.message === 'toOriginalLayout: no original-layout name for vae tensor decoder.up_blocks.0.attentions.0.to_q.weight');
});

test('OpenCLIP: q / k / v fused into in_proj in that order; SDXL: both encoders\' prefixes, text_projection transposed; refusals', () => {
  const layer = (i: number): Record<string, Tensor> => ({
    [`text_model.encoder.layers.${i}.self_attn.q_proj.weight`]: t(2, 3), [`text_model.encoder.layers.${i}.self_attn.k_proj.weight`]: t(2, 3),
    [`text_model.encoder.layers.${i}.self_attn.v_proj.weight`]: t(2, 3), [`text_model.encoder.layers.${i}.self_attn.v_proj.bias`]: t(2),
    [`text_model.encoder.layers.${i}.self_attn.q_proj.bias`]: t(2), [`text_model.encoder.layers.${i}.self_attn.k_proj.bias`]: t(2),
    [`text_model.encoder.layers.${i}.mlp.fc2.weight`]: t(3, 2), [`text_model.encoder.layers.${i}.layer_norm1.bias`]: t(3),
  });
  const text: Record<string, Tensor> = { ...layer(0), ...layer(1), 'text_model.embeddings.position_embedding.weight': t(4, 3), 'text_model.embeddings.position_ids': t(1, 4) };
  const O = 'cond_stage_model.model.';
  const out = toOriginalLayout({ text_encoder: text }, { textLayout: 'openclip' });
  const q = text['text_model.encoder.layers.1.self_attn.q_proj.weight']!, k = text['text_model.encoder.layers.1.self_attn.k_proj.weight']!;
  const v = text['text_model.encoder.layers.1.self_attn.v_proj.weight']!;
  const w = out[`${O}transformer.resblocks.1.attn.in_proj_weight`]!;
  assert.deepEqual([w.shape, [...w.data]], [[6, 3], [...q.data, ...k.data, ...v.data]]);
  const b = out[`${O}transformer.resblocks.0.attn.in_proj_bias`]!;
  assert.deepEqual([...b.data], ['q', 'k', 'v'].flatMap((p) => [...text[`text_model.encoder.layers.0.self_attn.${p}_proj.bias`]!.data]));
  assert.equal(out[`${O}transformer.resblocks.1.mlp.c_proj.weight`], text['text_model.encoder.layers.1.mlp.fc2.weight']);
  assert.equal(out[`${O}transformer.resblocks.0.ln_1.bias`], text['text_model.encoder.layers.0.layer_norm1.bias']);
  assert.equal(out[`${O}positional_embedding`], text['text_model.embeddings.position_embedding.weight']);
  assert.equal(Object.keys(out).length, 2 * 2 + 2 * 2 + 1);
  const noV = { ...text };
  delete noV['text_model.encoder.layers.1.self_attn.v_proj.weight'];
  assert.throws(() => toOriginalLayout({ text_encoder: noV }, { textLayout: 'openclip' }),
    (e: unknown) => e instanceof InputError && e.message === `toOriginalLayout: ${O}transformer.resblocks.1.attn.in_proj_weight needs all of q_proj, k_proj and v_proj`);
  for (const part of ['q', 'k']) {
    const missing = { ...text };
    delete missing[`text_model.encoder.layers.0.self_attn.${part}_proj.bias`];
    assert.throws(() => toOriginalLayout({ text_encoder: missing }, { textLayout: 'openclip' }),
      (e: unknown) => e instanceof InputError && e.message === `toOriginalLayout: ${O}transformer.resblocks.0.attn.in_proj_bias needs all of q_proj, k_proj and v_proj`, part);
  }
  for (const bad of ['text_model.encoder.layers.0.self_attn.o_proj.weight', 'text_model.encoder.layers.0.mlp.fc3.weight', 'text_model.embeddings.patch.weight']) {
    assert.throws(() => toOriginalLayout({ text_encoder: { ...text, [bad]: t(2) } }, { textLayout: 'openclip' }),
      (e: unknown) => e instanceof InputError && e.message === `toOriginalLayout: no original-layout name for text_encoder tensor ${bad}`, bad);
  }
  // SDXL: a second encoder selects conditioner.embedders.0 (CLIP, names kept) and .1 (OpenCLIP); text_projection = stored^T
  const proj = t(2, 3);
  const xl = toOriginalLayout({ text_encoder: { 'text_model.final_layer_norm.weight': t(3) }, text_encoder_2: { ...layer(0), 'text_projection.weight': proj } });
  assert.ok(xl['conditioner.embedders.0.transformer.text_model.final_layer_norm.weight']);
  const p = xl['conditioner.embedders.1.model.text_projection']!;
  assert.deepEqual([p.shape, [...p.data]], [[3, 2], [proj.data[0], proj.data[3], proj.data[1], proj.data[4], proj.data[2], proj.data[5]]]);
  assert.deepEqual(xl['conditioner.embedders.1.model.transformer.resblocks.0.attn.in_proj_weight']!.shape, [6, 3]);
  assert.equal(Object.keys(xl).length, 1 + 1 + 2 + 2);
  assert.throws(() => toOriginalLayout({ text_encoder: { 'text_model.x.weight': t(1) }, text_encoder_2: { 'x.weight': t(1) } }),
    (e: unknown) => e instanceof InputError && e.message === 'toOriginalLayout: no original-layout name for text_encoder_2 tensor x.weight');
  assert.throws(() => toOriginalLayout({ text_encoder: { 'embeddings.x.weight': t(1) }, text_encoder_2: {} }),
    (e: unknown) => e instanceof InputError && e.message === 'toOriginalLayout: no original-layout name for text_encoder tensor embeddings.x.weight');
  assert.throws(() => toOriginalLayout({ text_encoder: { 'embeddings.x.weight': t(1) } }),
    (e: unknown) => e instanceof InputError && e.message === 'toOriginalLayout: no original-layout name for text_encoder tensor embeddings.x.weight');
});
