import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { ControlNet, preprocessControlImage } from '../src/components/controlnet.js';
import { Graph, type Value } from '../src/graph/ir.js';
import * as op from '../src/graph/ops.js';
import { runOnce } from '../src/graph/session.js';
import { readImageRGB } from '../src/io/image.js';
import { controlNetModel } from '../src/models/controlnet.js';
import { unet2DConditionModel } from '../src/models/unet2d-condition.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { maxAbsDiff, tensor } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

const CN = 'tiny-controlnet-sd15';

test('ControlNetModel parity with diffusers: condition embedding, raw skips, residuals at scales 1 and 0.5, UNet with residuals', async () => {
  const gold = golden(CN, 'controlnet');
  const net = ControlNet.open(modelDir(CN));
  const unet = openCheckpoint(modelDir('tiny-sd15')).unet();
  const errs: string[] = [];
  for (const s of [1, 0.5]) {
    const g = new Graph();
    const sample = g.input('sample', gold.latents!.shape);
    const timestep = g.input('timestep', [2]);
    const ehs = g.input('ehs', gold.encoder_hidden_states!.shape);
    const cond = g.input('cond', gold.controlnet_cond!.shape);
    const scale = g.input('scale', [2, 1, 1, 1]);
    const taps = new Map<string, Value>();
    const r = controlNetModel({ sample, timestep, encoderHiddenStates: ehs, cond, scale }, net.weights, net.config, (n, v) => taps.set(n, v));
    r.down.forEach((v, k) => g.output(`s${s}.down_block_res_samples.${k}`, v));
    g.output(`s${s}.mid_block_res_sample`, r.mid);
    if (s === 1) {
      for (const [n, v] of taps) g.output(n, v);
      g.output('unet_with_controlnet.noise_pred', unet2DConditionModel({ sample, timestep, encoderHiddenStates: ehs }, unet.weights, unet.config, {
        skip: (k, x) => op.add(x, r.down[k]!), midBlock: (x) => op.add(x, r.mid),
      }));
    }
    const out = await runOnce(g, { sample: gold.latents!, timestep: tensor([2], [661, 121]), ehs: gold.encoder_hidden_states!, cond: gold.controlnet_cond!, scale: tensor([2, 1, 1, 1], [s, s]) });
    for (const k of Object.keys(out)) errs.push(`${k} ${close(out[k]!, gold[k]!, 5e-5, k).toExponential(1)}`);
  }
  console.log(`controlnet: ${errs.filter((e) => /mid|noise|cond_emb|\.8 /.test(e)).join(', ')}`);
});


test('control image preprocessing equals diffusers control_image_processor', async () => {
  const gold = golden(CN, 'controlnet');
  const img = await readImageRGB(goldenPath(CN, 'conditioning_image.png'));
  assert.equal(maxAbsDiff(preprocessControlImage(img, img.width, img.height, 4), gold.control_image_preprocessed!), 0);
});

test('StableDiffusionControlNetPipeline parity (4 steps, CFG 7.5); --control-scale 0 equals no ControlNet', async () => {
  const gold = golden(CN, 'pipeline_t2i');
  const meta = JSON.parse(fs.readFileSync(goldenPath(CN, 'pipeline_t2i.json'), 'utf8')) as { prompt: string; negative_prompt: string; num_inference_steps: number; guidance_scale: number; width: number; height: number; controlnet_conditioning_scale: number };
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const net = ControlNet.open(modelDir(CN));
  const image = await readImageRGB(goldenPath(CN, 'conditioning_image.png'));
  const base = { prompt: meta.prompt, negativePrompt: meta.negative_prompt, steps: meta.num_inference_steps, guidance: meta.guidance_scale, width: meta.width, height: meta.height, latents: gold.latents_in!, latentsOnly: true };
  const steps: number[] = [];
  const r = await textToImage(ck, { ...base, controls: [{ net, image, scale: meta.controlnet_conditioning_scale }], onStepEnd: (i, _t, l) => steps.push(close(l, gold[`step_${i}.latents_after`]!, 1e-4, `step ${i}`)) });
  const fin = close(r.latents, gold.final_latents!, 1e-4, 'final latents');
  console.log(`controlnet pipeline: steps ${steps.map((e) => e.toExponential(1)).join(' ')}, final ${fin.toExponential(1)}`);
  const off = await textToImage(ck, { ...base, controls: [{ net, image, scale: 0 }] });
  const plain = await textToImage(ck, base);
  assert.equal(maxAbsDiff(off.latents, plain.latents), 0);
});

test('vary + ControlNet: no residuals on the reference row, none on the unconditional branch in the first steps; two ControlNets add', async () => {
  const { vary } = await import('../src/pipelines/vary.js');
  const { createMethod } = await import('../src/methods/index.js');
  const { rows } = await import('../src/tensor.js');
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const net = ControlNet.open(modelDir(CN));
  const image = await readImageRGB(goldenPath(CN, 'conditioning_image.png'));
  const reference = await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png'));
  const latents = { shape: [1, 4, 16, 16], data: new Float32Array(1024).map((_, i) => Math.sin(i)) };
  type Pred = { ref: number; uncond: number; cond: number; out: import('../src/tensor.js').Tensor };
  const capture = async (controls: { net: ControlNet; image: typeof image; scale: number }[]): Promise<Pred[]> => {
    const preds: Pred[] = [];
    await vary(ck, {
      reference, prompt: 'a house', steps: 3, guidance: 5, latents, controls, controlUncondSteps: 2,
      method: createMethod('indetail-ip', 3, { controlnet: controls.length > 0, stratifiedSteps: 1 }),
      onUNetOutput: (_i, layout, pred) => preds.push({
        ref: layout.findIndex((r) => r.kind === 'ref'), uncond: layout.findIndex((r) => r.kind === 'gen' && r.branch === 'uncond'),
        cond: layout.findIndex((r) => r.kind === 'gen' && r.branch === 'cond'), out: pred,
      }),
    });
    return preds;
  };
  const without = await capture([]);
  const withCn = await capture([{ net, image, scale: 1 }]);
  const twice = await capture([{ net, image, scale: 0.5 }, { net, image, scale: 0.5 }]);
  // Step 0 has the same inputs with and without ControlNet, so rows without residuals must agree exactly.
  const p0 = withCn[0]!, q0 = without[0]!;
  assert.equal(maxAbsDiff(rows(p0.out, p0.ref), rows(q0.out, q0.ref)), 0, 'reference row unaffected');
  assert.equal(maxAbsDiff(rows(p0.out, p0.uncond), rows(q0.out, q0.uncond)), 0, 'uncond branch unaffected in the first steps');
  assert.ok(maxAbsDiff(rows(p0.out, p0.cond), rows(q0.out, q0.cond)) > 1e-3, 'cond branch gets the residuals');
  // Two ControlNets at 0.5 sum to one at 1.0 (same net, same image).
  assert.ok(maxAbsDiff(rows(twice[0]!.out, p0.cond), rows(p0.out, p0.cond)) < 1e-5, 'residuals of several ControlNets add');
});

test('ControlNet bad input: counts, channels, not an image', async () => {
  const { spawnSync } = await import('node:child_process');
  const path = await import('node:path');
  const os = await import('node:os');
  const bin = path.resolve(modelDir(CN), '../../../../dist/src/cli/main.js');
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-cn-'));
  const run = (extra: string[]) => spawnSync(process.execPath, [bin, 'generate', '--model', modelDir('tiny-sd15'), '--prompt', 'x', '--steps', '1', '--width', '64', '--height', '64', '--quiet', '--out', path.join(tmp, 'o.png'), ...extra], { encoding: 'utf8' });
  const img = goldenPath(CN, 'conditioning_image.png');
  let r = run(['--controlnet', modelDir(CN)]);
  assert.match(r.stderr, /error: 1 --controlnet but 0 --control-image/);
  r = run(['--controlnet', modelDir(CN), '--control-image', img, '--control-scale', '1', '--control-scale', '2']);
  assert.match(r.stderr, /error: 2 --control-scale for 1 --controlnet/);
  const notImg = path.join(tmp, 'depth.png');
  fs.writeFileSync(notImg, 'nope');
  r = run(['--controlnet', modelDir(CN), '--control-image', notImg]);
  assert.match(r.stderr, /error: .*depth\.png: not an image/);
  const wide = path.join(tmp, 'wide-cn');
  fs.cpSync(modelDir(CN), wide, { recursive: true });
  const cfg = JSON.parse(fs.readFileSync(path.join(wide, 'config.json'), 'utf8')) as Record<string, unknown>;
  cfg.block_out_channels = [32, 64, 32];
  fs.writeFileSync(path.join(wide, 'config.json'), JSON.stringify(cfg));
  r = run(['--controlnet', wide, '--control-image', img]);
  assert.notEqual(r.status, 0);
  assert.match(r.stderr, /error: .*wide-cn.*(weight has shape|does not fit this UNet)/);
  assert.doesNotMatch(r.stderr, /\n\s+at /);
  // another family: an SD 1.5 ControlNet on SDXL, and one whose text width is not the UNet's
  r = spawnSync(process.execPath, [bin, 'generate', '--model', modelDir('tiny-sdxl'), '--prompt', 'x', '--steps', '1', '--width', '64', '--height', '64', '--quiet', '--out', path.join(tmp, 'o.png'), '--controlnet', modelDir(CN), '--control-image', img], { encoding: 'utf8' });
  assert.equal(r.stderr.trim(), `error: ${modelDir(CN)} [addition_embed_type]: this ControlNet is for another model family: its addition_embed_type is null (SD 1.x/2.x), this UNet's is "text_time" (SDXL)`);
  const text48 = path.join(tmp, 'text48-cn');
  fs.cpSync(modelDir(CN), text48, { recursive: true });
  fs.writeFileSync(path.join(text48, 'config.json'), JSON.stringify({ ...JSON.parse(fs.readFileSync(path.join(modelDir(CN), 'config.json'), 'utf8')) as object, cross_attention_dim: 48 }));
  r = run(['--controlnet', text48, '--control-image', img]);
  assert.equal(r.stderr.trim(), `error: ${text48} [cross_attention_dim]: this ControlNet is for another model family: its cross_attention_dim is 48, this UNet's is 32`);
});
