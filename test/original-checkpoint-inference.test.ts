/**
 * Architecture inference of openOriginalCheckpoint on sparse original-layout HEADERS of layouts the other header
 * tests do not build (milliseconds each): UNets of one level, of layers_per_block 1, of per-level transformer
 * depths (SDXL's [1, 2, 10]), without down-block attention, with channels that are not multiples of 64; the real
 * SDXL base header with both text encoders; small CLIP / OpenCLIP encoders (1 or 0 layers, widths not multiples of
 * 64); VAEs with attention in one half only; keys in alphabetical order (as safetensors writers store them); and the
 * refusals each of these reaches, word for word. Expectations are diffusers' configs of the released models
 * (runwayml SD 1.5, stabilityai SDXL base 1.0) and its conversion rules (heads = channels / 64 for SD 2.x, OpenCLIP's
 * text_projection stored transposed, projection_dim = its second dimension). Mutation slice io-keymaps.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openOriginalCheckpoint, type OriginalCheckpointOptions } from '../src/io/original-checkpoint.js';
import { clip, clipL, ldmUnet, ldmUnetOf as unet, ldmVae, openClip, writeSparse, type Shapes } from './ldm-headers.js';
import { fileError, inputError } from './refusals.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-orig-infer-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));
let count = 0;
function file(shapes: Shapes, metadata?: Record<string, string>): string {
  const f = path.join(tmp, `h${count++}.safetensors`);
  writeSparse(f, shapes, metadata);
  return f;
}
function open(f: string, opts: OriginalCheckpointOptions = {}) {
  const ck = openOriginalCheckpoint(f, opts);
  ck.close();
  return ck;
}

const U = 'model.diffusion_model.';

const sd15 = (): Shapes => { const s: Shapes = {}; ldmUnet(s, 768, false); ldmVae(s); clipL(s); return s; };
const without = (s: Shapes, re: RegExp): Shapes => Object.fromEntries(Object.entries(s).filter(([k]) => !re.test(k)));
const rename = (s: Shapes, from: string, to: string): Shapes => Object.fromEntries(Object.entries(s).map(([k, v]) => [k.startsWith(from) ? to + k.slice(from.length) : k, v]));

test('the whole SD 1.5 UNet / VAE / text config; keys in alphabetical order (as safetensors writers store them) give the same', () => {
  const s = sd15();
  const sorted = Object.fromEntries(Object.entries(s).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
  assert.ok(Object.keys(sorted).indexOf(`${U}input_blocks.10.0.in_layers.0.weight`) < Object.keys(sorted).indexOf(`${U}input_blocks.2.0.in_layers.0.weight`));
  for (const f of [file(s), file(sorted)]) {
    const ck = open(f);
    // runwayml/stable-diffusion-v1-5 unet/config.json (the fields single-file conversion sets)
    assert.deepEqual(ck.unet.config().raw, {
      _class_name: 'UNet2DConditionModel', act_fn: 'silu', attention_head_dim: 8, block_out_channels: [320, 640, 1280, 1280],
      center_input_sample: false, cross_attention_dim: 768,
      down_block_types: ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D'],
      downsample_padding: 1, flip_sin_to_cos: true, freq_shift: 0, in_channels: 4, layers_per_block: 2, mid_block_type: 'UNetMidBlock2DCrossAttn',
      norm_eps: 1e-5, norm_num_groups: 32, out_channels: 4, sample_size: 64, transformer_layers_per_block: 1,
      up_block_types: ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D'], upcast_attention: false, use_linear_projection: false,
    });
    // runwayml/stable-diffusion-v1-5 vae/config.json
    assert.deepEqual(ck.vae!.config().raw, {
      _class_name: 'AutoencoderKL', act_fn: 'silu', block_out_channels: [128, 256, 512, 512], down_block_types: Array(4).fill('DownEncoderBlock2D'),
      force_upcast: true, in_channels: 3, latent_channels: 4, layers_per_block: 2, mid_block_add_attention: true, norm_num_groups: 32, out_channels: 3,
      sample_size: 512, scaling_factor: 0.18215, up_block_types: Array(4).fill('UpDecoderBlock2D'), use_quant_conv: true, use_post_quant_conv: true,
    });
    const t = ck.text_encoder!.config().raw;
    assert.deepEqual([t.architectures, t.model_type, t.hidden_act, t.hidden_size, t.intermediate_size, t.layer_norm_eps, t.max_position_embeddings,
      t.num_attention_heads, t.num_hidden_layers, t.vocab_size], [['CLIPTextModel'], 'clip_text_model', 'quick_gelu', 768, 3072, 1e-5, 77, 12, 12, 49408]);
    assert.equal([...ck.unet.weights().keys()].length, 686);
    assert.equal(ck.unet.weights().storedName('down_blocks.2.downsamplers.0.conv.weight'), `${U}input_blocks.9.0.op.weight`);
  }
});

test('UNet layouts: one level, layers_per_block 1, per-level transformer depths, no down-block attention; layouts refused', () => {
  // one level, no downsampler, no down-block attention: cross_attention_dim comes from the mid block
  const s1: Shapes = {};
  unet(s1, { ch: [64], attn: [false], L: 2, ctx: 768 });
  const one = open(file(s1));
  const u1 = one.unet.config().raw;
  assert.deepEqual([u1.block_out_channels, u1.layers_per_block, u1.down_block_types, u1.up_block_types, u1.cross_attention_dim, u1.transformer_layers_per_block],
    [[64], 2, ['DownBlock2D'], ['UpBlock2D'], 768, 1]);
  assert.equal(one.unet.weights().storedName('mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight'), `${U}middle_block.1.transformer_blocks.0.attn2.to_k.weight`);
  assert.equal(one.unet.weights().storedName('up_blocks.0.resnets.2.conv1.weight'), `${U}output_blocks.2.0.in_layers.2.weight`);
  assert.equal([...one.unet.weights().keys()].some((k) => k.includes('downsamplers') || k.includes('upsamplers')), false);
  // layers_per_block 1 (diffusers allows it; the tiny test models use it)
  const s2: Shapes = {};
  unet(s2, { ch: [64, 128], attn: [true, true], L: 1, ctx: 768 });
  const u2 = open(file(s2)).unet;
  assert.deepEqual([u2.config().raw.layers_per_block, u2.config().raw.block_out_channels], [1, [64, 128]]);
  assert.equal(u2.weights().storedName('down_blocks.1.resnets.0.conv_shortcut.weight'), `${U}input_blocks.3.0.skip_connection.weight`);
  assert.equal(u2.weights().storedName('up_blocks.0.upsamplers.0.conv.weight'), `${U}output_blocks.1.2.conv.weight`);
  // SDXL base's layout: no attention at level 0, 2 and 10 transformer blocks below (transformer_layers_per_block [1, 2, 10])
  const s3: Shapes = {};
  unet(s3, { ch: [320, 640, 1280], attn: [false, true, true], L: 2, ctx: 768, linear: true, depth: [1, 2, 10] });
  const u3 = open(file(s3)).unet;
  assert.deepEqual([u3.config().raw.transformer_layers_per_block, u3.config().raw.down_block_types, u3.config().raw.up_block_types],
    [[1, 2, 10], ['DownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D'], ['CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'UpBlock2D']]);
  assert.ok(u3.weights().has('mid_block.attentions.0.transformer_blocks.9.ff.net.2.bias'));
  assert.ok(u3.weights().has('up_blocks.1.attentions.2.transformer_blocks.1.attn1.to_q.weight'));
  assert.equal(u3.weights().has('up_blocks.1.attentions.2.transformer_blocks.2.attn1.to_q.weight'), false);
  // layouts that are not levels of equal depth
  const bad = (shapes: Shapes, message: string): void => {
    const f = file(shapes);
    fileError(() => openOriginalCheckpoint(f), f, `unexpected UNet layout: ${message} do not form levels of equal depth (not an SD 1.x/2.x UNet?)`, `${U}input_blocks`);
  };
  const three: Shapes = {};
  unet(three, { ch: [64, 64, 64], attn: [true, true, true], L: 2, ctx: 768 });
  bad(rename(three, `${U}input_blocks.6.0.op.`, `${U}input_blocks.7.0.op.`), '9 input blocks with downsamplers at [3, 7]');
  bad({ ...sd15(), [`${U}input_blocks.12.0.in_layers.0.weight`]: [1280] }, '13 input blocks with downsamplers at [3, 6, 9]');
  bad({ [`${U}input_blocks.0.0.weight`]: [64, 4, 3, 3], [`${U}input_blocks.1.0.op.weight`]: [64, 64, 3, 3], [`${U}input_blocks.2.0.op.weight`]: [64, 64, 3, 3] },
    '3 input blocks with downsamplers at [1, 2]');
});

test('UNet refusals name the tensor and what it was needed for; SD 2.x heads where channels are not multiples of 64', () => {
  const s = sd15();
  const f1 = file(without(s, /^model\.diffusion_model\.out\.2\.weight$/));
  fileError(() => openOriginalCheckpoint(f1), f1, 'missing tensor (needed to infer the UNet configuration)', `${U}out.2.weight`);
  const f2 = file({ ...s, [`${U}out.2.weight`]: [] });
  fileError(() => openOriginalCheckpoint(f2), f2, 'unexpected shape [] (needed to infer the UNet configuration)', `${U}out.2.weight`);
  const f3 = file({ ...s, [`${U}time_embedding.cond_proj.weight`]: [256] });
  fileError(() => openOriginalCheckpoint(f3), f3, 'unexpected shape [256] (needed to infer time_cond_proj_dim)', `${U}time_embedding.cond_proj.weight`);
  const xl: Shapes = {};
  ldmUnet(xl, 2048, true);
  xl[`${U}label_emb.0.0.weight`] = [2816];
  const f4 = file(xl);
  fileError(() => openOriginalCheckpoint(f4), f4, 'unexpected shape [2816] (needed to infer projection_class_embeddings_input_dim)', `${U}label_emb.0.0.weight`);
  // a tensor the key map needs but inference does not read
  const f5 = file(without(s, /^model\.diffusion_model\.input_blocks\.4\.0\.emb_layers\.1\.bias$/));
  fileError(() => openOriginalCheckpoint(f5), f5, 'missing tensor: the unet needs it (diffusers name down_blocks.1.resnets.0.time_emb_proj.bias)', `${U}input_blocks.4.0.emb_layers.1.bias`);
  inputError(() => openOriginalCheckpoint(file(s), { unetHeads: [-8, 8, 8, 8] }), 'unetHeads: -8 heads do not divide block 0\'s 320 channels');
  // SD 2.x (cross-attention width 1024): heads = channels / 64, 1 head (and a warning) where that is not whole
  const s2: Shapes = {};
  unet(s2, { ch: [128, 96], attn: [true, true], L: 1, ctx: 1024, linear: true });
  const f6 = file(s2);
  const ck = open(f6);
  assert.equal(ck.version, 2);
  assert.deepEqual(ck.unet.config().raw.attention_head_dim, [2, 1]);
  assert.deepEqual(ck.warnings, [
    `${f6}: SD 2.x checkpoint with no prediction type in its metadata; assuming 'epsilon' (right for 2.x-base). The 768x768 SD 2.0/2.1 models need predictionType 'v_prediction'.`,
    `${f6}: UNet channels [128, 96] are not multiples of SD 2.x's 64-channel heads; using 1 head where they are not. Pass unetHeads to set them.`,
  ]);
  assert.deepEqual(open(f6, { unetHeads: [4, 3] }).warnings.length, 1);
  assert.deepEqual(open(f6, { unetHeads: [4, 3] }).unet.config().raw.attention_head_dim, [4, 3]);
});

test('SD version from the UNet and text encoder: 1024 / 768 cross-attention, else OpenCLIP or linear projections mean 2.x', () => {
  const version = (ctx: number, linear: boolean, text?: (s: Shapes) => void): unknown => {
    const s: Shapes = {};
    unet(s, { ch: [64, 64], attn: [true, true], L: 1, ctx, linear });
    text?.(s);
    return open(file(s), { unetHeads: 8, textHeads: 8 }).version;
  };
  assert.equal(version(1024, false), 2);
  assert.equal(version(768, true, (s) => clip(s, 'cond_stage_model.transformer.', 768, 1)), 1);
  assert.equal(version(512, false, (s) => openClip(s, 'cond_stage_model.model.', 512, 2)), 2);
  assert.equal(version(512, false, (s) => clip(s, 'cond_stage_model.transformer.', 512, 1)), 1);
  assert.equal(version(512, true, (s) => clip(s, 'cond_stage_model.transformer.', 512, 1)), 2);
  assert.equal(version(512, false), 1);
  // a v_pred marker does not override an explicit prediction type
  const s: Shapes = { ...sd15(), v_pred: [] };
  assert.equal(open(file(s), { predictionType: 'epsilon' }).scheduler.raw.prediction_type, 'epsilon');
  assert.equal(open(file(s)).scheduler.raw.prediction_type, 'v_prediction');
  assert.equal(open(file(s)).unet.config().raw.sample_size, 64, 'an SD 1.x v-prediction model is still 512 px (768 is SD 2.x v only)');
});

test('VAE: attention in one half only, 2-D attention weights, a missing inferred tensor, no VAE at all', () => {
  const s = sd15();
  // diffusers' mid_block_add_attention covers both halves: attention in one half only is a file missing the other's
  const dec = file(without(s, /^first_stage_model\.encoder\.mid\.attn_1\./));
  fileError(() => openOriginalCheckpoint(dec), dec, 'missing tensor: the vae needs it (diffusers name encoder.mid_block.attentions.0.group_norm.weight)', 'first_stage_model.encoder.mid.attn_1.norm.weight');
  const enc = file(without(s, /^first_stage_model\.decoder\.mid\.attn_1\./));
  fileError(() => openOriginalCheckpoint(enc), enc, 'missing tensor: the vae needs it (diffusers name decoder.mid_block.attentions.0.group_norm.weight)', 'first_stage_model.decoder.mid.attn_1.norm.weight');
  const out = file(without(s, /^first_stage_model\.decoder\.conv_out\.weight$/));
  fileError(() => openOriginalCheckpoint(out), out, 'missing tensor (needed to infer the VAE configuration)', 'first_stage_model.decoder.conv_out.weight');
  // attention q/k/v/proj_out as Linear [C, C] (newer exports) or 1x1 conv [C, C, 1, 1]; anything else refused
  const lin = open(file({ ...s, 'first_stage_model.decoder.mid.attn_1.k.weight': [512, 512] })).vae!.weights();
  assert.deepEqual([lin.shape('decoder.mid_block.attentions.0.to_k.weight'), lin.shape('decoder.mid_block.attentions.0.to_v.weight')], [[512, 512], [512, 512]]);
  for (const shape of [[512], [512, 512, 1, 3], [512, 512, 3, 1]]) {
    const f = file({ ...s, 'first_stage_model.decoder.mid.attn_1.v.weight': shape });
    fileError(() => openOriginalCheckpoint(f), f, `expected a 1x1 conv or linear weight [C, C(, 1, 1)], got [${shape.join(', ')}]`, 'first_stage_model.decoder.mid.attn_1.v.weight');
  }
  // a UNet + text encoder file without a VAE
  const noVae = open(file(without(s, /^first_stage_model\./)));
  assert.equal(noVae.vae, undefined);
  assert.deepEqual([noVae.version, noVae.unet.config().raw.sample_size, noVae.text_encoder!.config().raw.hidden_size], [1, 64, 768]);
});

test('text encoders: 1 / 0 layers, widths that are not multiples of 64, a missing token embedding', () => {
  const base = (): Shapes => { const s: Shapes = {}; unet(s, { ch: [64, 64], attn: [true, true], L: 1, ctx: 768 }); return s; };
  const withClip = (width: number, layers: number): string => { const s = base(); clip(s, 'cond_stage_model.transformer.', width, layers); return file(s); };
  const withOpenClip = (layers: number): string => { const s = base(); openClip(s, 'cond_stage_model.model.', 1024, layers); return file(s); };
  assert.equal(open(withClip(768, 1)).text_encoder!.config().raw.num_hidden_layers, 1);
  const c0 = withClip(768, 0);
  inputError(() => openOriginalCheckpoint(c0), `textLayers 0: the CLIP text encoder of ${c0} has 0 layers`);
  const o2 = open(withOpenClip(2), { unetHeads: 8 });
  assert.deepEqual([o2.text_encoder!.config().raw.num_hidden_layers, [...o2.text_encoder!.weights().keys()].length], [1, 16 + 4]);
  const o1 = withOpenClip(1);
  inputError(() => openOriginalCheckpoint(o1, { unetHeads: 8 }), `textLayers 0: the OpenCLIP text encoder of ${o1} has 1 resblocks`);
  // CLIP's 64-dim heads: a width of 96 gets 1 head and a warning
  const w = withClip(96, 1);
  const ck = open(w);
  assert.equal(ck.text_encoder!.config().raw.num_attention_heads, 1);
  assert.deepEqual(ck.warnings, [`${w}: text encoder width 96 is not a multiple of CLIP's 64-dim heads; using 1 head. Pass textHeads to set it.`]);
  assert.deepEqual(open(w, { textHeads: 3 }).warnings, []);
  const s = base();
  clip(s, 'cond_stage_model.transformer.', 768, 1);
  const noTok = file(without(s, /token_embedding/));
  fileError(() => openOriginalCheckpoint(noTok), noTok, 'missing tensor (needed to infer the text encoder configuration)', 'cond_stage_model.transformer.text_model.embeddings.token_embedding.weight');
});

test('SDXL base header: both text encoders (OpenCLIP bigG stored transposed projection), heads, widths; refusals', () => {
  const xl = (text2: (s: Shapes) => void, pooled = 1280): Shapes => {
    const s: Shapes = {};
    unet(s, { ch: [320, 640, 1280], attn: [false, true, true], L: 2, ctx: 2048, linear: true, depth: [1, 2, 10] });
    s[`${U}label_emb.0.0.weight`] = [1280, pooled + 6 * 256]; s[`${U}label_emb.0.0.bias`] = [1280];
    s[`${U}label_emb.0.2.weight`] = [1280, 1280]; s[`${U}label_emb.0.2.bias`] = [1280];
    ldmVae(s);
    clip(s, 'conditioner.embedders.0.transformer.', 768, 12);
    text2(s);
    return s;
  };
  const f = file(xl((s) => openClip(s, 'conditioner.embedders.1.model.', 1280, 32)));
  const ck = open(f);
  assert.equal(ck.version, 'xl');
  const u = ck.unet.config().raw;
  // stabilityai/stable-diffusion-xl-base-1.0 unet/config.json
  assert.deepEqual([u.attention_head_dim, u.block_out_channels, u.transformer_layers_per_block, u.addition_embed_type, u.addition_time_embed_dim,
    u.projection_class_embeddings_input_dim, u.cross_attention_dim, u.use_linear_projection, u.sample_size, u.layers_per_block],
  [[5, 10, 20], [320, 640, 1280], [1, 2, 10], 'text_time', 256, 2816, 2048, true, 128, 2]);
  const t1 = ck.text_encoder!.config().raw;
  assert.deepEqual([t1.num_hidden_layers, t1.num_attention_heads, t1.hidden_size, t1.hidden_act], [12, 12, 768, 'quick_gelu'], 'SDXL keeps every CLIP layer');
  // stabilityai/stable-diffusion-xl-base-1.0 text_encoder_2/config.json
  const t2 = ck.text_encoder_2!.config().raw;
  assert.deepEqual([t2.architectures, t2.model_type, t2.hidden_act, t2.hidden_size, t2.intermediate_size, t2.layer_norm_eps, t2.max_position_embeddings,
    t2.num_attention_heads, t2.num_hidden_layers, t2.projection_dim, t2.vocab_size, t2.bos_token_id, t2.eos_token_id, t2.pad_token_id],
  [['CLIPTextModelWithProjection'], 'clip_text_model', 'gelu', 1280, 5120, 1e-5, 77, 20, 32, 1280, 49408, 0, 2, 1]);
  const w2 = ck.text_encoder_2!.weights();
  assert.equal(w2.storedName('text_projection.weight'), 'conditioner.embedders.1.model.text_projection');
  assert.equal(w2.storedName('text_model.encoder.layers.31.self_attn.v_proj.bias'), 'conditioner.embedders.1.model.transformer.resblocks.31.attn.in_proj_bias');
  assert.equal([...w2.keys()].length, 32 * 16 + 5);
  assert.equal(ck.text_encoder!.weights().storedName('text_model.encoder.layers.11.mlp.fc2.weight'), 'conditioner.embedders.0.transformer.text_model.encoder.layers.11.mlp.fc2.weight');
  assert.deepEqual(ck.warnings, []);
  // textHeads sets both encoders' heads
  const h4 = open(f, { textHeads: 4 });
  assert.deepEqual([h4.text_encoder!.config().raw.num_attention_heads, h4.text_encoder_2!.config().raw.num_attention_heads], [4, 4]);
  // a second encoder of width 96 (not whole 64-dim heads) projecting to 80: text_projection.weight is the stored matrix transposed
  const g = file(xl((s) => openClip(s, 'conditioner.embedders.1.model.', 96, 2, [96, 80]), 80));
  const small = open(g);
  const s2 = small.text_encoder_2!.config().raw;
  assert.deepEqual([s2.hidden_size, s2.num_attention_heads, s2.projection_dim, s2.num_hidden_layers, s2.intermediate_size], [96, 1, 80, 2, 384]);
  assert.deepEqual(small.text_encoder_2!.weights().shape('text_projection.weight'), [80, 96]);
  assert.deepEqual(small.text_encoder_2!.weights().shape('text_model.encoder.layers.1.self_attn.k_proj.weight'), [96, 96]);
  assert.equal(small.unet.config().raw.addition_time_embed_dim, 256);
  assert.deepEqual(small.warnings, [`${g}: second text encoder width 96 is not a multiple of 64-dim heads; using 1 head. Pass textHeads to set it.`]);
  assert.deepEqual(open(g, { textHeads: 3 }).warnings, []);
  assert.equal(open(g, { textHeads: 3 }).text_encoder_2!.config().raw.num_attention_heads, 3);
  inputError(() => openOriginalCheckpoint(g, { textHeads: 256 }), 'textHeads: 256 heads do not divide the second text encoder\'s width 96');
  const p = file(xl((s) => { openClip(s, 'conditioner.embedders.1.model.', 1280, 2); s['conditioner.embedders.1.model.text_projection'] = [1280]; }));
  fileError(() => openOriginalCheckpoint(p), p, 'unexpected shape [1280] (needed to infer the pooled text width)', 'conditioner.embedders.1.model.text_projection');
});
