import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FileFormatError } from '../src/errors.js';
import { Graph } from '../src/graph/ir.js';
import { runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { openOriginalCheckpoint, type OriginalCheckpointOptions } from '../src/io/original-checkpoint.js';
import { originalKeyOf, toOriginalLayout, type DiffusersComponents, type TextEncoderLayout } from '../src/io/original-keymap.js';
import { writeSafetensors } from '../src/io/safetensors.js';
import { WeightsView } from '../src/io/weights.js';
import { autoencoderConfig, vaeDecode, vaeEncode } from '../src/models/autoencoder-kl.js';
import { clipTextConfig, clipTextModel } from '../src/models/clip.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { close, golden, goldenInts, modelDir } from './helpers.js';
import { clipL, ldmUnet, ldmVae, openClipH, writeSparse, type Shapes } from './ldm-headers.js';
import { readComponent } from './model-fixtures.js';

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'visprompt-original-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const COMPONENTS = ['unet', 'vae', 'text_encoder'] as const;


function readFolder(m: string): Required<DiffusersComponents> {
  return {
    unet: readComponent(path.join(modelDir(m), 'unet')),
    vae: readComponent(path.join(modelDir(m), 'vae')),
    text_encoder: readComponent(path.join(modelDir(m), 'text_encoder')),
  };
}

const folderConfig = (m: string, c: string): Config => Config.read(path.join(modelDir(m), c, 'config.json'));

/** An OpenCLIP resblock the loader must drop (SD 2.x uses the penultimate layer). */
function appendUnusedResblock(orig: Record<string, Tensor>, layers: number, hidden: number): void {
  const from = `cond_stage_model.model.transformer.resblocks.${layers - 1}.`;
  for (const [k, t] of Object.entries({ ...orig })) {
    if (k.startsWith(from)) orig[`cond_stage_model.model.transformer.resblocks.${layers}.${k.slice(from.length)}`] = { shape: t.shape, data: t.data.map((x) => 1 - x) };
  }
  orig['cond_stage_model.model.text_projection'] = { shape: [hidden, hidden], data: new Float32Array(hidden * hidden).fill(0.5) };
  orig['cond_stage_model.model.logit_scale'] = { shape: [], data: new Float32Array([4.6]) };
}

const CASES: { m: string; layout: TextEncoderLayout; opts: OriginalCheckpointOptions }[] = [
  { m: 'tiny-sd15', layout: 'clip', opts: {} },
  { m: 'tiny-sd21', layout: 'clip', opts: { predictionType: 'v_prediction', textHiddenAct: 'gelu' } },
  { m: 'tiny-sd21', layout: 'openclip', opts: { predictionType: 'v_prediction' } },
];

for (const { m, layout, opts } of CASES) {
  test(`original single-file layout round trip (${m}, ${layout} text encoder): every tensor and the inferred configs`, async () => {
    const parts = readFolder(m);
    const orig = toOriginalLayout(parts, { textLayout: layout });
    const textCfg = folderConfig(m, 'text_encoder');
    const layers = textCfg.int('num_hidden_layers');
    const hidden = textCfg.int('hidden_size');
    if (layout === 'openclip') {
      const qkv = orig['cond_stage_model.model.transformer.resblocks.0.attn.in_proj_weight']!;
      assert.deepEqual(qkv.shape, [3 * hidden, hidden], 'q/k/v fused into in_proj_weight');
      assert.equal(orig['text_model.encoder.layers.0.self_attn.q_proj.weight'], undefined);
      appendUnusedResblock(orig, layers, hidden);
    } else {
      orig['cond_stage_model.transformer.text_model.embeddings.position_ids'] = { shape: [1, 77], data: new BigInt64Array(77).map((_, i) => BigInt(i)) } as unknown as Tensor;
    }
    assert.ok(Object.keys(orig).every((k) => /^(model\.diffusion_model|first_stage_model|cond_stage_model)\./.test(k)), 'every key in the original layout');
    assert.deepEqual(orig['first_stage_model.decoder.mid.attn_1.q.weight']!.shape.slice(2), [1, 1], 'VAE attention as 1x1 conv');
    const file = path.join(tmp, `${m}-${layout}.safetensors`);
    writeSafetensors(file, orig);

    // Tiny models: heads cannot come from the 64-channel rule, so pass them (real checkpoints need no options).
    const unetFolder = unetConfig(folderConfig(m, 'unet'));
    const ck = openOriginalCheckpoint(file, { ...opts, unetHeads: unetFolder.numAttentionHeads, textHeads: textCfg.int('num_attention_heads'), imageSize: 64 });
    try {
      assert.equal(ck.version, m === 'tiny-sd15' ? 1 : 2);
      assert.equal(ck.textEncoderLayout, layout);
      assert.deepEqual(ck.warnings, []);

      // (a) every diffusers tensor, same shape, same values, and nothing else
      for (const c of COMPONENTS) {
        const src = ck[c]!.weights();
        assert.deepEqual([...src.keys()].sort(), Object.keys(parts[c]).sort(), `${c}: the diffusers key set`);
        for (const [k, t] of Object.entries(parts[c])) {
          assert.deepEqual([...src.shape(k)], [...t.shape], `${c} ${k}: shape`);
          const got = src.read(k);
          assert.deepEqual([...got.shape], [...t.shape], `${c} ${k}: read shape`);
          assert.equal(maxAbsDiff(got, t), 0, `${c} ${k}: values`);
        }
      }
      if (layout === 'openclip') {
        const src = ck.text_encoder!.weights();
        assert.equal(src.storedName('text_model.encoder.layers.1.self_attn.v_proj.bias'), 'cond_stage_model.model.transformer.resblocks.1.attn.in_proj_bias');
        assert.ok(!src.has(`text_model.encoder.layers.${layers}.layer_norm1.weight`), 'last resblock dropped');
      }

      // (b) configs: the parsed configs the model builders use, field for field
      assert.deepEqual(unetConfig(ck.unet.config()), unetFolder);
      const raw = ck.unet.config().raw;
      const folderRaw = folderConfig(m, 'unet').raw;
      for (const k of ['block_out_channels', 'layers_per_block', 'down_block_types', 'up_block_types', 'cross_attention_dim', 'use_linear_projection', 'in_channels', 'out_channels', 'sample_size']) {
        assert.deepEqual(raw[k], folderRaw[k], `unet ${k}`);
      }
      assert.deepEqual(autoencoderConfig(ck.vae!.config()), autoencoderConfig(folderConfig(m, 'vae')));
      for (const k of ['block_out_channels', 'latent_channels', 'layers_per_block', 'scaling_factor', 'in_channels', 'out_channels']) {
        assert.deepEqual(ck.vae!.config().raw[k], folderConfig(m, 'vae').raw[k], `vae ${k}`);
      }
      const { projectionDim: _, ...textFolder } = clipTextConfig(textCfg);
      assert.deepEqual(clipTextConfig(ck.text_encoder!.config()), textFolder);
      const sched = Config.read(path.join(modelDir(m), 'scheduler', 'scheduler_config.json')).raw;
      for (const [k, v] of Object.entries(sched)) if (!k.startsWith('_')) assert.deepEqual(ck.scheduler.raw[k], v, `scheduler ${k}`);

      // The model builders take the sources unchanged (every weight resolves with the expected shape).
      const g = new Graph();
      const ucfg = unetConfig(ck.unet.config());
      unet2DConditionModel({ sample: g.input('sample', [1, 4, 8, 8]), timestep: g.input('t', [1]), encoderHiddenStates: g.input('ehs', [1, 77, ucfg.crossAttentionDim]) }, new WeightsView(ck.unet.weights()), ucfg);
      const vcfg = autoencoderConfig(ck.vae!.config());
      vaeDecode(vaeEncode(g.input('image', [1, 3, 16, 16]), new WeightsView(ck.vae!.weights()), vcfg).mean, new WeightsView(ck.vae!.weights()), vcfg);
      if (layout === 'openclip') {
        // The split q/k/v feed the text encoder: same hidden states as transformers.
        const ids = goldenInts(m, 'text_encoder', 'input_ids');
        const tg = new Graph();
        const out = clipTextModel(tg.input('input_ids', ids.shape, 'int64'), new WeightsView(ck.text_encoder!.weights()), clipTextConfig(ck.text_encoder!.config()));
        tg.output('last_hidden_state', out.lastHiddenState);
        const r = await runOnce(tg, { input_ids: { int64: ids.data, shape: ids.shape } });
        const err = close(r.last_hidden_state!, golden(m, 'text_encoder').last_hidden_state!, 2e-5, 'last_hidden_state');
        console.log(`${m} OpenCLIP-layout text encoder: last_hidden_state max abs err ${err.toExponential(1)}`);
      }
    } finally {
      ck.close();
    }

    if (layout === 'openclip') {
      const all = openOriginalCheckpoint(file, { textLayers: layers + 1, textHeads: 4, unetHeads: [2, 4, 4] });
      try {
        assert.equal(all.text_encoder!.config().raw.num_hidden_layers, layers + 1, 'textLayers keeps the last resblock');
        assert.ok(all.text_encoder!.weights().has(`text_model.encoder.layers.${layers}.mlp.fc2.bias`));
      } finally {
        all.close();
      }
    }
  });
}

test('original-layout key map: well-known SD 1.5 / 2.x names', () => {
  // SD 1.x/2.x UNet: 2 resnets per level, attention in down levels 0-2 and up levels 1-3; 4 VAE levels.
  const ctx = { layersPerBlock: 2, upBlockHasAttention: [false, true, true, true], vaeLevels: 4, textLayout: 'clip' as const };
  const k = (c: 'unet' | 'vae' | 'text_encoder', key: string, layout: TextEncoderLayout = 'clip') => originalKeyOf(c, key, { ...ctx, textLayout: layout });
  assert.deepEqual(k('unet', 'down_blocks.1.attentions.0.proj_in.weight'), { key: 'model.diffusion_model.input_blocks.4.1.proj_in.weight' });
  assert.deepEqual(k('unet', 'down_blocks.0.downsamplers.0.conv.weight'), { key: 'model.diffusion_model.input_blocks.3.0.op.weight' });
  assert.deepEqual(k('unet', 'down_blocks.3.resnets.1.time_emb_proj.bias'), { key: 'model.diffusion_model.input_blocks.11.0.emb_layers.1.bias' });
  assert.deepEqual(k('unet', 'mid_block.resnets.1.conv2.weight'), { key: 'model.diffusion_model.middle_block.2.out_layers.3.weight' });
  assert.deepEqual(k('unet', 'mid_block.attentions.0.transformer_blocks.0.attn2.to_k.weight'), { key: 'model.diffusion_model.middle_block.1.transformer_blocks.0.attn2.to_k.weight' });
  assert.deepEqual(k('unet', 'up_blocks.0.upsamplers.0.conv.weight'), { key: 'model.diffusion_model.output_blocks.2.1.conv.weight' });
  assert.deepEqual(k('unet', 'up_blocks.1.upsamplers.0.conv.bias'), { key: 'model.diffusion_model.output_blocks.5.2.conv.bias' });
  assert.deepEqual(k('unet', 'up_blocks.3.resnets.2.conv_shortcut.weight'), { key: 'model.diffusion_model.output_blocks.11.0.skip_connection.weight' });
  assert.deepEqual(k('unet', 'time_embedding.linear_2.weight'), { key: 'model.diffusion_model.time_embed.2.weight' });
  assert.deepEqual(k('unet', 'conv_norm_out.bias'), { key: 'model.diffusion_model.out.0.bias' });
  assert.deepEqual(k('vae', 'decoder.up_blocks.0.upsamplers.0.conv.weight'), { key: 'first_stage_model.decoder.up.3.upsample.conv.weight' });
  assert.deepEqual(k('vae', 'decoder.up_blocks.3.resnets.0.conv_shortcut.bias'), { key: 'first_stage_model.decoder.up.0.block.0.nin_shortcut.bias' });
  assert.deepEqual(k('vae', 'encoder.mid_block.attentions.0.to_out.0.weight'), { key: 'first_stage_model.encoder.mid.attn_1.proj_out.weight', conv1x1: true });
  assert.deepEqual(k('vae', 'encoder.mid_block.attentions.0.group_norm.bias'), { key: 'first_stage_model.encoder.mid.attn_1.norm.bias' });
  assert.deepEqual(k('vae', 'decoder.conv_norm_out.weight'), { key: 'first_stage_model.decoder.norm_out.weight' });
  assert.deepEqual(k('text_encoder', 'text_model.encoder.layers.11.mlp.fc2.weight'), { key: 'cond_stage_model.transformer.text_model.encoder.layers.11.mlp.fc2.weight' });
  assert.deepEqual(k('text_encoder', 'text_model.encoder.layers.22.self_attn.k_proj.bias', 'openclip'), { key: 'cond_stage_model.model.transformer.resblocks.22.attn.in_proj_bias', qkvPart: 1 });
  assert.deepEqual(k('text_encoder', 'text_model.encoder.layers.0.mlp.fc1.weight', 'openclip'), { key: 'cond_stage_model.model.transformer.resblocks.0.mlp.c_fc.weight' });
  assert.deepEqual(k('text_encoder', 'text_model.embeddings.position_embedding.weight', 'openclip'), { key: 'cond_stage_model.model.positional_embedding' });
  assert.equal(k('unet', 'not_a_weight'), undefined);
});

// ---------------------------------------------------------------------------------------------------
// Real-size SD 1.5 / 2.1 headers (sparse files: shapes only, the data section is never written)

test('configs inferred from real-size SD 1.5 and SD 2.1 headers (no options)', () => {
  const sd15: Shapes = {};
  ldmUnet(sd15, 768, false); ldmVae(sd15); clipL(sd15);
  const f15 = path.join(tmp, 'sd15-header.safetensors');
  writeSparse(f15, sd15);
  const a = openOriginalCheckpoint(f15);
  try {
    assert.equal(a.version, 1);
    assert.equal(a.textEncoderLayout, 'clip');
    const u = a.unet.config().raw;
    assert.deepEqual(u.block_out_channels, [320, 640, 1280, 1280]);
    assert.deepEqual(u.down_block_types, ['CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'CrossAttnDownBlock2D', 'DownBlock2D']);
    assert.deepEqual(u.up_block_types, ['UpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D', 'CrossAttnUpBlock2D']);
    assert.equal(u.attention_head_dim, 8);
    assert.equal(u.cross_attention_dim, 768);
    assert.equal(u.use_linear_projection, false);
    assert.equal(u.sample_size, 64);
    assert.equal(u.layers_per_block, 2);
    // diffusers' SD 1.5 component files hold 686 (UNet), 248 (VAE) and 196 (+ position_ids) tensors.
    assert.equal([...a.unet.weights().keys()].length, 686);
    assert.equal([...a.vae!.weights().keys()].length, 248);
    assert.equal([...a.text_encoder!.weights().keys()].length, 196);
    const v = a.vae!.config().raw;
    assert.deepEqual([v.block_out_channels, v.latent_channels, v.layers_per_block, v.scaling_factor, v.sample_size], [[128, 256, 512, 512], 4, 2, 0.18215, 512]);
    assert.deepEqual(a.vae!.weights().shape('decoder.mid_block.attentions.0.to_q.weight'), [512, 512]);
    const t = clipTextConfig(a.text_encoder!.config());
    assert.deepEqual([t.hiddenSize, t.numHiddenLayers, t.numAttentionHeads, t.intermediateSize, t.hiddenAct, t.maxPositionEmbeddings], [768, 12, 12, 3072, 'quick_gelu', 77]);
    assert.equal(a.scheduler.raw.prediction_type, 'epsilon');
    assert.deepEqual(a.warnings, []);
  } finally {
    a.close();
  }

  const sd21: Shapes = {};
  ldmUnet(sd21, 1024, true); ldmVae(sd21); openClipH(sd21);
  const f21 = path.join(tmp, 'sd21-header.safetensors');
  writeSparse(f21, sd21);
  const b = openOriginalCheckpoint(f21);
  try {
    assert.equal(b.version, 2);
    assert.equal(b.textEncoderLayout, 'openclip');
    const u = b.unet.config().raw;
    assert.deepEqual(u.attention_head_dim, [5, 10, 20, 20]);
    assert.equal(u.cross_attention_dim, 1024);
    assert.equal(u.use_linear_projection, true);
    assert.equal(u.sample_size, 64, '512x512 for SD 2.x base (epsilon): 768 is only the v-prediction models\' size');
    assert.equal(b.scheduler.raw.prediction_type, 'epsilon');
    assert.equal(b.warnings.length, 1, 'SD 2.x without a prediction type: warned');
    assert.match(b.warnings[0]!, /v_prediction/);
    const t = clipTextConfig(b.text_encoder!.config());
    assert.deepEqual([t.hiddenSize, t.numHiddenLayers, t.numAttentionHeads, t.intermediateSize, t.hiddenAct], [1024, 23, 16, 4096, 'gelu']);
    const src = b.text_encoder!.weights();
    assert.equal([...src.keys()].length, 23 * 16 + 4);
    assert.deepEqual(src.shape('text_model.encoder.layers.22.self_attn.v_proj.weight'), [1024, 1024]);
    const v = src.read('text_model.encoder.layers.3.self_attn.k_proj.bias'); // a hole reads as zeros
    assert.deepEqual([v.shape, v.data.length, v.data.every((x) => x === 0)], [[1024], 1024, true]);
  } finally {
    b.close();
  }
  const c = openOriginalCheckpoint(f21, { predictionType: 'v_prediction' });
  try {
    assert.equal(c.scheduler.raw.prediction_type, 'v_prediction');
    assert.equal(c.unet.config().raw.sample_size, 96, '768x768 for the v-prediction SD 2.x models');
    assert.deepEqual(c.warnings, []);
  } finally {
    c.close();
  }
});

// ---------------------------------------------------------------------------------------------------
// Errors

test('original checkpoints: pickle files, non-SD files and missing tensors are reported clearly', () => {
  // Pickles are read weights-only (test/pickle.test.ts); a truncated one is a one-line file error.
  const ckpt = path.join(tmp, 'model.ckpt');
  fs.writeFileSync(ckpt, 'PK\x03\x04 truncated');
  assert.throws(() => openOriginalCheckpoint(ckpt), (e: unknown) => e instanceof FileFormatError && e.file === ckpt && /zip/.test(e.message) && /truncated/.test(e.message));

  const other = path.join(tmp, 'not-sd.safetensors');
  writeSafetensors(other, { 'encoder.layer.0.weight': { shape: [2], data: new Float32Array(2) } });
  assert.throws(() => openOriginalCheckpoint(other), (e: unknown) => e instanceof FileFormatError && e.file === other && e.message.includes('model.diffusion_model.') && e.message.includes('first_stage_model.'));

  const diffusersUnet = path.join(modelDir('tiny-sd15'), 'unet', 'diffusion_pytorch_model.safetensors');
  assert.throws(() => openOriginalCheckpoint(diffusersUnet), (e: unknown) => e instanceof FileFormatError && /diffusers model folder/.test(e.message));

  const parts = readFolder('tiny-sd15');
  const full = toOriginalLayout(parts);
  for (const missing of ['model.diffusion_model.input_blocks.1.0.in_layers.2.weight', 'first_stage_model.decoder.up.0.block.2.conv2.bias', 'cond_stage_model.transformer.text_model.final_layer_norm.weight']) {
    const f = path.join(tmp, 'missing.safetensors');
    const { [missing]: _, ...rest } = full;
    writeSafetensors(f, rest);
    assert.throws(() => openOriginalCheckpoint(f, { textHeads: 4 }), (e: unknown) => e instanceof FileFormatError && e.file === f && e.key === missing && e.message.includes(f), missing);
  }
});
