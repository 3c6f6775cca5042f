/**
 * WebGPU parity subset on the software GPU (SwiftShader, shipped by Debian's chromium package): a UNet
 * call, text-to-image, DDIM inversion and InDetail-IP on tiny-sd15 with `--device webgpu`, against the
 * same diffusers goldens as the CPU suites, within twice their tolerances.
 *
 * ONNX Runtime's WebGPU provider loads libvulkan.so.1 when the first session starts, so the library path
 * must be set before Node starts: without VISPROMPT_WEBGPU_CHILD this file reruns itself in a child
 * process with the driver's environment (VK_ICD_FILENAMES, XDG_RUNTIME_DIR, LD_LIBRARY_PATH).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { exactCos, exactSin } from '../src/graph/exact-trig.js';
import { Graph } from '../src/graph/ir.js';
import { configureEngine, runOnce } from '../src/graph/session.js';
import { Config } from '../src/io/config.js';
import { readImageRGB } from '../src/io/image.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { createMethod } from '../src/methods/index.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary } from '../src/pipelines/vary.js';
import { concatRows, rows, tensor } from '../src/tensor.js';
import { close, golden, goldenPath, modelDir } from './helpers.js';

/** SwiftShader's Vulkan driver as Debian's chromium installs it (`dpkg -L chromium`). */
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const M = 'tiny-sd15';
/** Twice the CPU suites' bounds (unet.test.ts 5e-5, pipelines/vary 1e-4): the contract's WebGPU tolerance. */
const UNET_TOL = 1e-4;
const LATENT_TOL = 2e-4;

const inChild = process.env.VISPROMPT_WEBGPU_CHILD === '1';

if (!inChild) {
  test('exact sin/cos (the WebGPU timestep features) match float64 sin/cos within 4e-7 for |x| <= 1000', async () => {
    const n = 4001;
    const xs = Float32Array.from({ length: n }, (_, i) => Math.fround((i - 2000) * 0.49991 + (i % 7) * 0.013));
    const g = new Graph();
    const x = g.input('x', [n]);
    g.output('sin', exactSin(x));
    g.output('cos', exactCos(x));
    const r = await runOnce(g, { x: { shape: [n], data: xs } });
    let worst = 0;
    for (let i = 0; i < n; i++) worst = Math.max(worst, Math.abs(r.sin!.data[i]! - Math.sin(xs[i]!)), Math.abs(r.cos!.data[i]! - Math.cos(xs[i]!)));
    assert.ok(worst <= 4e-7, `exact sin/cos max abs err ${worst}`);
  });

  const skip = fs.existsSync(SWIFTSHADER_ICD) ? false : `no software GPU: ${SWIFTSHADER_ICD} is absent (apt install chromium to run the WebGPU parity subset)`;
  test('WebGPU parity subset on SwiftShader (tiny-sd15), run in a child process with the Vulkan driver environment', { skip }, () => {
    const self = fileURLToPath(import.meta.url);
    const libDir = path.dirname(SWIFTSHADER_ICD); // chromium ships its own libvulkan.so.1 beside the driver
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VISPROMPT_WEBGPU_CHILD: '1',
      VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? SWIFTSHADER_ICD,
      XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir(),
      LD_LIBRARY_PATH: [libDir, process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
    };
    delete env.NODE_TEST_CONTEXT; // else the nested `node --test` reports to this runner instead of running
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', self], { env, encoding: 'utf8', timeout: 600_000 });
    const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /webgpu|✔|✖|not ok|Error|err/i.test(l));
    console.log(lines.join('\n'));
    assert.equal(r.status, 0, `WebGPU child run failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /✔ webgpu: UNet call/, `the WebGPU tests did not run in the child:\n${r.stdout}`);
  });
} else {
  // scripts/gpu-check.sh reruns this subset on CUDA with VISPROMPT_PARITY_DEVICE=cuda (same goldens, same bounds).
  configureEngine({ device: process.env.VISPROMPT_PARITY_DEVICE === 'cuda' ? 'cuda' : 'webgpu' });

  test('webgpu: UNet call matches diffusers (noise_pred and taps)', async () => {
    const dir = path.join(modelDir(M), 'unet');
    const cfg = unetConfig(Config.read(path.join(dir, 'config.json')));
    const vb = new WeightsView(openComponentWeights(dir));
    const gold = golden(M, 'unet');
    const g = new Graph();
    const sample = g.input('sample', gold.latents!.shape);
    const timestep = g.input('timestep', [2]);
    const ehs = g.input('encoder_hidden_states', gold.encoder_hidden_states!.shape);
    const taps: string[] = [];
    const out = unet2DConditionModel({ sample, timestep, encoderHiddenStates: ehs }, vb, cfg, { tap: (name, v) => { if (gold[name] && !taps.includes(name)) { taps.push(name); g.output(name, v); } } });
    g.output('noise_pred', out);
    const r = await runOnce(g, { sample: gold.latents!, timestep: tensor([2], [801, 41]), encoder_hidden_states: gold.encoder_hidden_states! });
    const errs = Object.keys(r).map((k) => [k, close(r[k]!, gold[k]!, UNET_TOL, `webgpu ${k}`)] as const).sort((a, b) => b[1] - a[1]);
    console.log(`webgpu ${M} unet: ${errs.length} tensors, worst ${errs[0]![0]} ${errs[0]![1].toExponential(1)}; noise_pred ${errs.find(([k]) => k === 'noise_pred')![1].toExponential(1)}`);
  });

  const meta = JSON.parse(fs.readFileSync(goldenPath(M, 'pipeline_t2i.json'), 'utf8')) as {
    num_inference_steps: number; width: number; height: number;
    cases: { prefix: string; guidance_scale: number; negative_prompt: string | null; prompt: string }[];
  };
  // SwiftShader compiles every kernel on the CPU: by default one guidance case (the one with CFG); all with VISPROMPT_WEBGPU_FULL=1.
  const full = process.env.VISPROMPT_WEBGPU_FULL === '1';
  for (const c of meta.cases.filter((k) => full || k.guidance_scale > 1)) {
    test(`webgpu: text-to-image matches StableDiffusionPipeline (guidance ${c.guidance_scale})`, async () => {
      const gold = golden(M, 'pipeline_t2i');
      const r = await textToImage(openCheckpoint(modelDir(M)), {
        prompt: c.prompt, negativePrompt: c.negative_prompt ?? undefined, steps: meta.num_inference_steps, guidance: c.guidance_scale,
        width: meta.width, height: meta.height, latents: gold.latents_in!,
      });
      const fin = close(r.latents, gold[`${c.prefix}.final_latents`]!, LATENT_TOL, 'webgpu final latents');
      const img = gold[`${c.prefix}.image_np`]!;
      let worst = 0;
      for (let i = 0; i < img.data.length; i++) worst = Math.max(worst, Math.abs(r.images[0]!.data[i]! - Math.round(img.data[i]! * 255)));
      assert.ok(worst <= 1, `webgpu uint8 image differs by ${worst}`);
      console.log(`webgpu ${M} ${c.prefix}: final latents max abs err ${fin.toExponential(1)}, image uint8 max diff ${worst}`);
    });
  }

  test('webgpu: DDIM inversion chain matches diffusers', { skip: !full && 'VISPROMPT_WEBGPU_FULL=1 runs it' }, async () => {
    const gold = golden(M, 'ddim_inversion');
    const inv = JSON.parse(fs.readFileSync(goldenPath(M, 'ddim_inversion.json'), 'utf8')) as { prompt: string; num_inference_steps: number };
    const r = await invert(openCheckpoint(modelDir(M)), await readImageRGB(goldenPath(M, 'inversion_input.png')), { prompt: inv.prompt, steps: inv.num_inference_steps });
    const chain = concatRows(r.chain);
    const err = close({ shape: [chain.shape[0]!, 1, ...chain.shape.slice(1)], data: chain.data }, gold.chain!, LATENT_TOL, 'webgpu chain');
    console.log(`webgpu ${M} inversion chain max abs err ${err.toExponential(1)}`);
  });

  test('webgpu: InDetail-IP matches the official code (inversion chain, final latents)', { skip: !full && 'VISPROMPT_WEBGPU_FULL=1 runs it' }, async () => {
    const gold = golden(M, 'indetail_ip');
    const s = (JSON.parse(fs.readFileSync(goldenPath(M, 'indetail_ip.json'), 'utf8')) as {
      settings: { prompt: string; inv_prompt: string; negative_prompt: string; ddim_step: number; cfg: number; num_samples: number; seed: number; ap_kwargs: { end_stratified_attention: number; lambda_img: number } };
    }).settings;
    const r = await vary(openCheckpoint(modelDir(M)), {
      reference: await readImageRGB(goldenPath(M, 'inversion_input.png')),
      method: createMethod('indetail-ip', s.ddim_step, { stratifiedSteps: s.ap_kwargs.end_stratified_attention, lambdaP: s.ap_kwargs.lambda_img, lambdaG: 1 }),
      prompt: s.prompt, inversionPrompt: s.inv_prompt, negativePrompt: s.negative_prompt, steps: s.ddim_step, guidance: s.cfg,
      numImages: s.num_samples, noise: new TorchGenerator(s.seed),
    });
    const chainErr = close(concatRows([...r.inversion.chain].reverse()), gold.zts!, LATENT_TOL, 'webgpu zts');
    const latErr = close(r.latents, rows(gold.final_latents!, 1, 1 + s.num_samples), LATENT_TOL, 'webgpu final latents');
    console.log(`webgpu indetail-ip: zts max abs err ${chainErr.toExponential(1)}, final latents ${latErr.toExponential(1)}`);
  });
}
