/**
 * openOriginalCheckpoint's options, metadata rules and refusals on real-size SD 1.5 / 2.1 / XL original-layout
 * HEADERS (sparse safetensors files: only the header is written, so each open takes milliseconds). Expectations are
 * diffusers' conventions: SD 1.x 8 heads, SD 2.x 64-channel heads, OpenCLIP's penultimate layer, SDXL's
 * EulerDiscreteScheduler / 1024 px / 0.13025 VAE scale and text_time embedding (addition_time_embed_dim =
 * (label_emb in_features - pooled width) / 6), the modelspec metadata keys. Mutation slice io-keymaps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openOriginalCheckpoint, type OriginalCheckpointOptions } from '../src/io/original-checkpoint.js';
import { clipL, ldmUnet, ldmVae, openClipH, writeSparse, type Shapes } from './ldm-headers.js';
import { fileError, inputError } from './refusals.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-orig-opts-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let n = 0;
function file(shapes: Shapes, metadata?: Record<string, string>): string {
  const f = path.join(tmp, `h${n++}.safetensors`);
  writeSparse(f, shapes, metadata);
  return f;
}
const sd15 = (): Shapes => { const s: Shapes = {}; ldmUnet(s, 768, false); ldmVae(s); clipL(s); return s; };
const sd21 = (): Shapes => { const s: Shapes = {}; ldmUnet(s, 1024, true); ldmVae(s); openClipH(s); return s; };
const U = 'model.diffusion_model.';
const SD15 = file(sd15());
const SD21 = file(sd21());

function open(f: string, opts: OriginalCheckpointOptions = {}) {
  const ck = openOriginalCheckpoint(f, opts);
  ck.close();
  return ck;
}

test('option values are checked before the file is opened', () => {
  const none = path.join(tmp, 'does-not-exist.safetensors');
  inputError(() => openOriginalCheckpoint(none, { sdVersion: 3 as never }), 'sdVersion must be 1 or 2, got 3');
  inputError(() => openOriginalCheckpoint(none, { predictionType: 'sample' as never }), 'predictionType must be \'epsilon\' or \'v_prediction\', got sample');
  for (const [name, v] of [['imageSize', 0], ['imageSize', 1.5], ['textHeads', -4], ['textLayers', 0], ['textLayers', 2.5]] as const) {
    inputError(() => openOriginalCheckpoint(none, { [name]: v }), `${name} must be a positive integer, got ${v}`);
  }
  assert.equal(open(SD15, { imageSize: 1024 }).unet.config().raw.sample_size, 128);
});

test('SD 1.x / 2.x: forced versions, heads, image size, upcast, VAE scale, text activation and layers', () => {
  const a = open(SD15, { sdVersion: 2 });
  assert.equal(a.version, 2);
  const ua = a.unet.config().raw;
  assert.deepEqual([ua.attention_head_dim, ua.upcast_attention, ua.sample_size], [[5, 10, 20, 20], true, 64]);
  const b = open(SD21, { sdVersion: 1, upcastAttention: false, imageSize: 640, vaeScalingFactor: 0.2, textHiddenAct: 'quick_gelu' });
  assert.equal(b.version, 1);
  assert.deepEqual([b.unet.config().raw.attention_head_dim, b.unet.config().raw.upcast_attention, b.unet.config().raw.sample_size], [8, false, 80]);
  assert.deepEqual([b.vae!.config().raw.sample_size, b.vae!.config().raw.scaling_factor], [640, 0.2]);
  assert.equal(b.text_encoder!.config().raw.hidden_act, 'quick_gelu');
  assert.equal(b.scheduler.raw.prediction_type, 'epsilon');
  assert.deepEqual(b.warnings, [], 'an SD 1.x model: no prediction-type guess to warn about');
  const c = open(SD15);
  assert.deepEqual([c.unet.config().raw.upcast_attention, c.text_encoder!.config().raw.hidden_act, c.text_encoder!.config().raw.num_attention_heads], [false, 'quick_gelu', 12]);
  assert.deepEqual(c.scheduler.raw, {
    _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', trained_betas: null,
    clip_sample: false, clip_sample_range: 1.0, set_alpha_to_one: false, steps_offset: 1, prediction_type: 'epsilon', timestep_spacing: 'leading',
    thresholding: false, dynamic_thresholding_ratio: 0.995, sample_max_value: 1.0, rescale_betas_zero_snr: false,
  });
  // unet heads: one number, a list (equal entries collapse to one number), refusals
  assert.equal(open(SD15, { unetHeads: 4 }).unet.config().raw.attention_head_dim, 4);
  assert.equal(open(SD15, { unetHeads: [8, 8, 8, 8] }).unet.config().raw.attention_head_dim, 8);
  assert.deepEqual(open(SD15, { unetHeads: [5, 10, 20, 20] }).unet.config().raw.attention_head_dim, [5, 10, 20, 20]);
  inputError(() => openOriginalCheckpoint(SD15, { unetHeads: [8, 8, 8] }), 'unetHeads: expected 4 values (one per UNet block), got 3');
  inputError(() => openOriginalCheckpoint(SD15, { unetHeads: [3, 8, 8, 8] }), 'unetHeads: 3 heads do not divide block 0\'s 320 channels');
  inputError(() => openOriginalCheckpoint(SD15, { unetHeads: [8, 8, 8, 0] }), 'unetHeads: 0 heads do not divide block 3\'s 1280 channels');
  inputError(() => openOriginalCheckpoint(SD15, { unetHeads: [8, 2.5, 8, 8] }), 'unetHeads: 2.5 heads do not divide block 1\'s 640 channels');
  // text encoder heads and layers
  assert.equal(open(SD15, { textHeads: 8 }).text_encoder!.config().raw.num_attention_heads, 8);
  inputError(() => openOriginalCheckpoint(SD15, { textHeads: 5 }), 'textHeads: 5 heads do not divide the text encoder\'s width 768');
  assert.equal(open(SD15, { textLayers: 11 }).text_encoder!.config().raw.num_hidden_layers, 11);
  assert.equal(open(SD15, { textLayers: 12 }).text_encoder!.config().raw.num_hidden_layers, 12);
  inputError(() => openOriginalCheckpoint(SD15, { textLayers: 13 }), `textLayers 13: the CLIP text encoder of ${SD15} has 12 layers`);
  assert.equal(open(SD21).text_encoder!.config().raw.num_hidden_layers, 23, 'OpenCLIP: the penultimate layer');
  assert.equal(open(SD21, { textLayers: 24 }).text_encoder!.config().raw.num_hidden_layers, 24);
  inputError(() => openOriginalCheckpoint(SD21, { textLayers: 25 }), `textLayers 25: the OpenCLIP text encoder of ${SD21} has 24 resblocks`);
});

test('prediction type: option, modelspec metadata, a v_pred marker tensor; an SD 2.x guess is warned about', () => {
  const pred = (meta: Record<string, string> | undefined, extra: Shapes = {}, opts: OriginalCheckpointOptions = {}) => {
    const ck = open(file({ ...sd21(), ...extra }, meta), opts);
    return [ck.scheduler.raw.prediction_type, ck.unet.config().raw.sample_size, ck.warnings.length];
  };
  for (const v of ['v', ' V_Prediction ', 'v-prediction', 'velocity']) assert.deepEqual(pred({ 'modelspec.prediction_type': v }), ['v_prediction', 96, 0], v);
  for (const e of ['epsilon', 'EPS']) assert.deepEqual(pred({ 'modelspec.prediction_type': e }), ['epsilon', 64, 0], e);
  assert.deepEqual(pred({ 'modelspec.architecture': 'stable-diffusion-v2-768-v' }), ['v_prediction', 96, 0]);
  assert.deepEqual(pred({ 'modelspec.architecture': 'Stable-Diffusion-V2-768-V ' }), ['v_prediction', 96, 0]);
  assert.deepEqual(pred({ 'modelspec.architecture': 'stable-diffusion-v2-512' }), ['epsilon', 64, 1]);
  assert.deepEqual(pred({ 'modelspec.architecture': 'stable-diffusion-v1-v' }), ['epsilon', 64, 1]);
  assert.deepEqual(pred({ 'modelspec.prediction_type': 'x0' }), ['epsilon', 64, 1]);
  assert.deepEqual(pred(undefined, { v_pred: [] }), ['v_prediction', 96, 0]);
  assert.deepEqual(pred({ 'modelspec.prediction_type': 'v' }, {}, { predictionType: 'epsilon' }), ['epsilon', 64, 0]);
  const w = open(SD21).warnings;
  assert.deepEqual(w, [`${SD21}: SD 2.x checkpoint with no prediction type in its metadata; assuming 'epsilon' (right for 2.x-base). The 768x768 SD 2.0/2.1 models need predictionType 'v_prediction'.`]);
});

test('SDXL headers: text_time embedding width, Euler scheduler, 1024 px, 0.13025 VAE scale; its refusals', () => {
  const xl = (inFeatures: number): Shapes => {
    const s: Shapes = {};
    ldmUnet(s, 2048, true); ldmVae(s);
    s[`${U}label_emb.0.0.weight`] = [1280, inFeatures]; s[`${U}label_emb.0.0.bias`] = [1280];
    s[`${U}label_emb.0.2.weight`] = [1280, 1280]; s[`${U}label_emb.0.2.bias`] = [1280];
    return s;
  };
  const f = file(xl(2816));
  const ck = open(f);
  assert.equal(ck.version, 'xl');
  assert.equal(ck.text_encoder, undefined);
  const u = ck.unet.config().raw;
  assert.deepEqual([u.addition_embed_type, u.addition_time_embed_dim, u.projection_class_embeddings_input_dim, u.sample_size, u.cross_attention_dim], ['text_time', 256, 2816, 128, 2048]);
  assert.equal(ck.vae!.config().raw.scaling_factor, 0.13025);
  assert.deepEqual(ck.scheduler.raw, {
    _class_name: 'EulerDiscreteScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', trained_betas: null,
    clip_sample: false, set_alpha_to_one: false, skip_prk_steps: true, sample_max_value: 1.0, steps_offset: 1,
    prediction_type: 'epsilon', timestep_spacing: 'leading', interpolation_type: 'linear', use_karras_sigmas: false,
  });
  assert.ok([...ck.unet.weights().keys()].includes('add_embedding.linear_2.bias'));
  assert.equal(ck.unet.weights().storedName('add_embedding.linear_1.weight'), `${U}label_emb.0.0.weight`);
  inputError(() => openOriginalCheckpoint(f, { sdVersion: 1 }), `--sd-version 1: ${f} is an SDXL checkpoint (label_emb and conditioner.embedders keys)`);
  for (const bad of [2817, 1280, 1274]) {
    const g = file(xl(bad));
    fileError(() => openOriginalCheckpoint(g), g, `label_emb.0.0 takes ${bad} inputs, which is not the pooled text width 1280 + 6 time ids x an integer width`, `${U}label_emb.0.0.weight`);
  }
  assert.equal(open(file(xl(1286))).unet.config().raw.addition_time_embed_dim, 1);
  // label_emb beside a cond_stage_model text encoder, or a class-embedding table: class-conditioned UNets
  const msg = 'class-conditioned UNets (label_emb with cond_stage_model: SD x4 upscaler, unCLIP) are not supported; only SD 1.x / 2.x / XL text-to-image UNets';
  const c1 = file({ ...sd15(), [`${U}label_emb.0.0.weight`]: [1280, 1280] });
  fileError(() => openOriginalCheckpoint(c1), c1, msg, `${U}label_emb`);
  const c2 = file({ ...sd15(), [`${U}label_emb.weight`]: [1000, 1280] });
  fileError(() => openOriginalCheckpoint(c2), c2, msg, `${U}label_emb`);
});

test('LCM guidance projection under either spelling; not-SD files and broken UNet / VAE / text headers are named', () => {
  for (const p of ['time_embedding.cond_proj.', 'time_embed.0.cond_proj.']) {
    const ck = open(file({ ...sd15(), [`${U}${p}weight`]: [1280, 256] }));
    assert.equal(ck.unet.config().raw.time_cond_proj_dim, 256, p);
    assert.equal(ck.unet.weights().storedName('time_embedding.cond_proj.weight'), `${U}${p}weight`);
  }
  assert.equal(open(SD15).unet.config().raw.time_cond_proj_dim, undefined);
  const expected = 'expected Stable Diffusion 1.x/2.x/XL original-layout keys: model.diffusion_model.* (UNet, e.g. model.diffusion_model.input_blocks.0.0.weight), first_stage_model.* (VAE) and cond_stage_model.transformer.text_model.*, cond_stage_model.model.* or conditioner.embedders.0.transformer.* + conditioner.embedders.1.model.* (text encoders)';
  const notSd = (shapes: Shapes, what: string, found: string, hint = ''): void => {
    const f = file(shapes);
    fileError(() => openOriginalCheckpoint(f), f, `not a Stable Diffusion 1.x/2.x/XL single-file checkpoint: ${what}; ${expected}. ${found}.${hint}`);
  };
  notSd({}, 'no model.diffusion_model.* tensors', 'Found 0 tensors');
  notSd({ 'joint_blocks.0.x.weight': [2], b: [1], c: [1], d: [1] }, 'no model.diffusion_model.* tensors', 'Found 4 tensors (e.g. joint_blocks.0.x.weight, b, c)', ' This looks like an SD3/Flux transformer checkpoint, which is not supported.');
  notSd({ 'model.double_blocks.3.img_attn.qkv.weight': [2] }, 'no model.diffusion_model.* tensors', 'Found 1 tensors (e.g. model.double_blocks.3.img_attn.qkv.weight)', ' This looks like an SD3/Flux transformer checkpoint, which is not supported.');
  notSd({ 'encoder.down_blocks.0.resnets.0.conv1.weight': [2] }, 'no model.diffusion_model.* tensors', 'Found 1 tensors (e.g. encoder.down_blocks.0.resnets.0.conv1.weight)', ' This looks like one diffusers component file; pass the diffusers model folder instead.');
  notSd({ 'text_model.final_layer_norm.weight': [2] }, 'no model.diffusion_model.* tensors', 'Found 1 tensors (e.g. text_model.final_layer_norm.weight)', ' This looks like one diffusers component file; pass the diffusers model folder instead.');
  notSd({ 'x.text_model.y': [2] }, 'no model.diffusion_model.* tensors', 'Found 1 tensors (e.g. x.text_model.y)');
  notSd({ [`${U}out.2.weight`]: [4] }, 'it has model.diffusion_model.* tensors but no UNet model.diffusion_model.input_blocks.0.0.weight', `Found 1 tensors (e.g. ${U}out.2.weight)`);
  // UNet structure
  const twoD = file({ ...sd15(), [`${U}input_blocks.0.0.weight`]: [320, 4] });
  fileError(() => openOriginalCheckpoint(twoD), twoD, 'expected a 4-D conv weight, got shape [320, 4]', `${U}input_blocks.0.0.weight`);
  const noMid = sd15();
  for (const k of Object.keys(noMid)) if (k.startsWith(`${U}middle_block.1.`)) delete noMid[k];
  const fm = file(noMid);
  fileError(() => openOriginalCheckpoint(fm), fm, 'the UNet mid block has no cross-attention transformer (SD 1.x/2.x UNets have one)', `${U}middle_block.1.proj_in.weight`);
  const gap = sd15();
  for (const k of Object.keys(gap)) if (k.startsWith(`${U}input_blocks.6.`)) delete gap[k];
  const fg = file(gap);
  fileError(() => openOriginalCheckpoint(fg), fg, 'unexpected UNet layout: 12 input blocks with downsamplers at [3, 9] do not form levels of equal depth (not an SD 1.x/2.x UNet?)', `${U}input_blocks`);
  const crossRank = file({ ...sd15(), [`${U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`]: [320, 768, 1, 1] });
  fileError(() => openOriginalCheckpoint(crossRank), crossRank, 'unexpected shape [320, 768, 1, 1] (needed to infer cross_attention_dim)', `${U}input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight`);
  // VAE levels must run 0, 1, ...
  const vgap = sd15();
  for (const k of Object.keys(vgap)) if (k.startsWith('first_stage_model.encoder.down.0.')) delete vgap[k];
  const fv = file(vgap);
  fileError(() => openOriginalCheckpoint(fv), fv, 'expected VAE encoder levels first_stage_model.encoder.down.0, .1, ...; found [1, 2, 3]', 'first_stage_model.encoder.down.0');
  // a VAE without mid attention or quant convs (diffusers' mid_block_add_attention / use_quant_conv false)
  const plain = sd15();
  for (const k of Object.keys(plain)) if (/first_stage_model\.(encoder|decoder)\.mid\.attn_1\.|first_stage_model\.(post_)?quant_conv\./.test(k)) delete plain[k];
  const pv = open(file(plain)).vae!;
  assert.deepEqual([pv.config().raw.mid_block_add_attention, pv.config().raw.use_quant_conv, pv.config().raw.use_post_quant_conv], [false, false, false]);
  assert.equal([...pv.weights().keys()].some((k) => k.includes('attentions') || k.includes('quant_conv')), false);
  assert.deepEqual([...open(SD15).vae!.config().raw.block_out_channels as number[]], [128, 256, 512, 512]);
  // fused q/k/v rows must split in three
  const qkv = file({ ...sd21(), 'cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight': [3071, 1024] });
  fileError(() => openOriginalCheckpoint(qkv), qkv, 'fused q/k/v has shape [3071, 1024]; its first dimension should be 3 x hidden size', 'cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight');
  const conv = file({ ...sd15(), 'first_stage_model.encoder.mid.attn_1.q.weight': [512, 512, 3, 3] });
  fileError(() => openOriginalCheckpoint(conv), conv, 'expected a 1x1 conv or linear weight [C, C(, 1, 1)], got [512, 512, 3, 3]', 'first_stage_model.encoder.mid.attn_1.q.weight');
});

test('legacy CLIP exports without the text_model. level map to the same diffusers names', () => {
  const s = sd15();
  const legacy: Shapes = {};
  for (const [k, v] of Object.entries(s)) legacy[k.replace('cond_stage_model.transformer.text_model.', 'cond_stage_model.transformer.')] = v;
  const ck = open(file(legacy));
  const src = ck.text_encoder!.weights();
  assert.equal([...src.keys()].length, 196);
  assert.equal(src.storedName('text_model.encoder.layers.3.mlp.fc2.bias'), 'cond_stage_model.transformer.encoder.layers.3.mlp.fc2.bias');
  assert.equal(src.storedName('text_model.embeddings.token_embedding.weight'), 'cond_stage_model.transformer.embeddings.token_embedding.weight');
  assert.deepEqual([ck.text_encoder!.config().raw.hidden_size, ck.text_encoder!.config().raw.num_hidden_layers], [768, 12]);
  assert.equal(open(SD15).text_encoder!.weights().storedName('text_model.final_layer_norm.weight'), 'cond_stage_model.transformer.text_model.final_layer_norm.weight');
});
