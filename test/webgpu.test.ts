/**
 * WebGPU parity subset on the software GPU (SwiftShader, shipped by Debian's chromium package), against the
 * same goldens as the CPU suites, within twice their tolerances: on tiny-sd15 a UNet call (every tap) and
 * text-to-image; the first denoising steps of tiny-sd21 (v-prediction) and tiny-sdxl text-to-image, of DDIM
 * inversion, of vary with InDetail-IP and with kv-concat (RIVAL). VISPROMPT_WEBGPU_FULL=1 adds whole runs.
 *
 * Without VISPROMPT_WEBGPU_CHILD this file reruns itself in a child process with the driver's environment as
 * the contract sets it (VK_ICD_FILENAMES, XDG_RUNTIME_DIR; no LD_LIBRARY_PATH: the library finds chromium's
 * Vulkan loader itself, src/graph/vulkan-loader.ts). VISPROMPT_PARITY_DEVICE=cpu|cuda runs the child's checks
 * on another provider (scripts/gpu-check.sh; cpu gives the CPU's own errors for comparison).
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
import { Graph, type Value } from '../src/graph/ir.js';
import { configureEngine, runOnce } from '../src/graph/session.js';
import { loaderCandidates } from '../src/graph/vulkan-loader.js';
import { softwareAdapter } from '../src/graph/software-adapter.js';
import { einsumAttention, einsumAttentionCore, einsumLinear, groupedConv2d, meanLastAxis, softmaxLastAxis } from '../src/graph/software-gpu.js';
import { attentionCore } from '../src/graph/nn.js';
import * as op from '../src/graph/ops.js';
import { Config } from '../src/io/config.js';
import { readImageRGB } from '../src/io/image.js';
import { openComponentWeights, WeightsView } from '../src/io/weights.js';
import { createMethod } from '../src/methods/index.js';
import { createNoise } from '../src/noise/gaussian.js';
import { unet2DConditionModel, unetConfig } from '../src/models/unet2d-condition.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { invert, type Inversion } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary } from '../src/pipelines/vary.js';
import { concatRows, rows, tensor, type Tensor } from '../src/tensor.js';
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

  test('the Vulkan loader is looked for beside each driver manifest of VK_ICD_FILENAMES, then in chromium\'s folder', () => {
    assert.deepEqual(loaderCandidates('/opt/gpu/icd.json:rel/sw.json'), ['/opt/gpu/libvulkan.so.1', path.resolve('rel/libvulkan.so.1'), '/usr/lib/chromium/libvulkan.so.1']);
    assert.deepEqual(loaderCandidates(undefined), ['/usr/lib/chromium/libvulkan.so.1']);
  });

  test('the software-adapter kernels are chosen for SwiftShader-only driver lists or VISPROMPT_WEBGPU_KERNELS=naive', () => {
    assert.equal(softwareAdapter({ VK_ICD_FILENAMES: SWIFTSHADER_ICD }), true);
    assert.equal(softwareAdapter({ VK_DRIVER_FILES: '/a/vk_swiftshader_icd.json:/b/vk_swiftshader_icd.json' }), true);
    assert.equal(softwareAdapter({ VK_ICD_FILENAMES: `/usr/share/vulkan/icd.d/nvidia_icd.json:${SWIFTSHADER_ICD}` }), false);
    assert.equal(softwareAdapter({ VK_DRIVER_FILES: '/usr/share/vulkan/icd.d/nvidia_icd.json', VK_ICD_FILENAMES: SWIFTSHADER_ICD }), false);
    assert.equal(softwareAdapter({}), false);
    assert.equal(softwareAdapter({ VK_ICD_FILENAMES: SWIFTSHADER_ICD, VISPROMPT_WEBGPU_KERNELS: 'tiled' }), false);
    assert.equal(softwareAdapter({ VISPROMPT_WEBGPU_KERNELS: 'naive' }), true);
    assert.equal(softwareAdapter(undefined), false);
  });

  test('the software-adapter graph forms (Einsum attention and linear, pooled softmax, Einsum mean, grouped conv) compute what the default ones do (CPU provider)', async () => {
    configureEngine({ device: 'cpu' });
    const fill = (n: number, seed: number): Float32Array => Float32Array.from({ length: n }, (_, i) => Math.sin(i * 1.37 + seed) * 2);
    const [b, n, m, heads, d] = [2, 6, 7, 2, 3];
    const g = new Graph();
    const q = g.input('q', [b, n, heads * d]), k = g.input('k', [b, m, heads * d]), v = g.input('v', [b, m, heads * 4]);
    const x = g.input('x', [2, 4, 5, 5]), w = g.input('w', [6, 4, 3, 3]), wl = g.input('wl', [3, 5]), bias = g.input('bias', [6]);
    const split = (t: Value, dh: number): Value => op.transpose(op.reshape(t, [b, t.dim(1), heads, dh]), [0, 2, 1, 3]);
    const mask = op.constFloat(g, [1, 1, n, m], fill(n * m, 9).map((t) => (t > 1.5 ? -Infinity : t)), 'mask');
    g.output('att', einsumAttention(q, k, v, heads, 0.7));
    g.output('att_ref', op.reshape(op.transpose(attentionCore(split(q, d), split(k, d), split(v, 4), 0.7), [0, 2, 1, 3]), [b, n, heads * 4]));
    g.output('core', einsumAttentionCore(split(q, d), split(k, d), split(v, 4), 0.7, mask));
    g.output('core_ref', attentionCore(split(q, d), split(k, d), split(v, 4), 0.7, mask));
    // keys shortened at run time (reference attention's keysIfUsed: the IR keeps the static length)
    const end = g.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.from([1n]) }, 'end');
    const runtimeOne = (t: Value): Value => g.node('Slice', [t, g.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.from([0n]) }, 'start'), end, g.constant({ dtype: 'int64', shape: [1], data: BigInt64Array.from([1n]) }, 'axis')], [{ shape: t.shape, dtype: t.dtype }])[0]!;
    g.output('short', einsumAttention(q, runtimeOne(k), runtimeOne(v), heads, 0.7));
    g.output('short_ref', op.reshape(op.transpose(attentionCore(split(q, d), split(op.slice(k, 1, 0, 1), d), split(op.slice(v, 1, 0, 1), 4), 0.7), [0, 2, 1, 3]), [b, n, heads * 4]));
    g.output('softmax', softmaxLastAxis(x));
    g.output('softmax_ref', op.softmax(x, -1));
    g.output('mean', meanLastAxis(x));
    g.output('mean_ref', op.reduceMean(x, [-1]));
    g.output('conv', groupedConv2d(x, w, bias, { stride: 1, padding: 1 })!);
    g.output('conv_ref', op.conv2d(x, w, bias, { stride: 1, padding: 1 }));
    g.output('linear', einsumLinear(op.reshape(x, [-1, 5]), wl, null));
    g.output('linear_ref', op.matmul(op.reshape(x, [-1, 5]), op.transpose(wl, [1, 0])));
    const feeds = { q: tensor([b, n, heads * d], fill(b * n * heads * d, 1)), k: tensor([b, m, heads * d], fill(b * m * heads * d, 2)), v: tensor([b, m, heads * 4], fill(b * m * heads * 4, 3)), x: tensor([2, 4, 5, 5], fill(200, 4)), w: tensor([6, 4, 3, 3], fill(216, 5)), wl: tensor([3, 5], fill(15, 6)), bias: tensor([6], fill(6, 7)) };
    const r = await runOnce(g, feeds);
    for (const name of ['att', 'short', 'core', 'softmax', 'mean', 'conv', 'linear']) {
      const got = r[name]!, want = r[`${name}_ref`]!;
      assert.deepEqual(got.shape, want.shape, name);
      let worst = 0;
      for (let i = 0; i < want.data.length; i++) worst = Math.max(worst, Math.abs(got.data[i]! - want.data[i]!));
      assert.ok(worst <= 2e-5, `${name}: software-adapter form differs from the default by ${worst}`);
    }
    assert.equal(groupedConv2d(x, op.constFloat(g, [5, 4, 1, 1], fill(20, 8), 'odd'), null, { stride: 1, padding: 0 }), undefined, 'an odd channel count keeps the plain conv');
  });

  const skip = fs.existsSync(SWIFTSHADER_ICD) ? false : `no software GPU: ${SWIFTSHADER_ICD} is absent (apt install chromium to run the WebGPU parity subset)`;
  test('WebGPU parity subset on SwiftShader (tiny-sd15, tiny-sd21, tiny-sdxl; t2i, inversion, InDetail-IP, RIVAL), run in a child process with the contract\'s driver environment', { skip }, () => {
    const self = fileURLToPath(import.meta.url);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VISPROMPT_WEBGPU_CHILD: '1',
      VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? SWIFTSHADER_ICD,
      XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir(),
    };
    delete env.NODE_TEST_CONTEXT; // else the nested `node --test` reports to this runner instead of running
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', self], { env, encoding: 'utf8', timeout: 1_200_000 });
    const lines = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /webgpu|✔|✖|not ok|Error|err/i.test(l));
    console.log(lines.join('\n'));
    assert.equal(r.status, 0, `WebGPU child run failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /✔ webgpu: UNet call/, `the WebGPU tests did not run in the child:\n${r.stdout}`);
  });

  // Real GPUs get the tiled kernels (MatMul, Softmax, fused conv layouts); SwiftShader gets barrier-free forms by
  // default (src/graph/software-gpu.ts). One UNet call in the tiled form keeps the real-GPU graph under parity in CI.
  test('WebGPU parity of the real-GPU (tiled) graph forms: one UNet call on SwiftShader with VISPROMPT_WEBGPU_KERNELS=tiled', { skip }, () => {
    const self = fileURLToPath(import.meta.url);
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      VISPROMPT_WEBGPU_CHILD: '1',
      VISPROMPT_WEBGPU_KERNELS: 'tiled',
      VK_ICD_FILENAMES: process.env.VK_ICD_FILENAMES ?? SWIFTSHADER_ICD,
      XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir(),
    };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--test', '--test-reporter=spec', '--test-name-pattern=webgpu: UNet call', self], { env, encoding: 'utf8', timeout: 600_000 });
    console.log(`${r.stdout}\n${r.stderr}`.split('\n').filter((l) => /webgpu|✔|✖|not ok|Error|err/i.test(l)).join('\n'));
    assert.equal(r.status, 0, `WebGPU tiled child run failed:\n${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /✔ webgpu: UNet call/, `the tiled UNet call did not run in the child:\n${r.stdout}`);
  });
} else {
  // scripts/gpu-check.sh reruns this subset on CUDA with VISPROMPT_PARITY_DEVICE=cuda (same goldens, same bounds).
  // VISPROMPT_PARITY_DEVICE=cpu runs the same checks on the CPU provider (the CPU's own errors, for the bound's statement).
  const device = process.env.VISPROMPT_PARITY_DEVICE === 'cuda' || process.env.VISPROMPT_PARITY_DEVICE === 'cpu' ? process.env.VISPROMPT_PARITY_DEVICE : 'webgpu';
  configureEngine({ device });

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

  // Every other model family and method, in CI: the first STEPS denoising steps of each pipeline against the
  // golden's per-step latents (a run is stopped through its abort signal once they are seen). The graphs a
  // device can get wrong are all in the first step; later steps run the same graphs on other values
  // (SwiftShader runs a tiny UNet call in tens of seconds, so CI takes one step; VISPROMPT_WEBGPU_STEPS=2.. more).
  const STEPS = Number(process.env.VISPROMPT_WEBGPU_STEPS ?? 1);

  /** Run `go` until `n` denoising steps have ended; returns the latents after each. */
  async function firstSteps(n: number, go: (ctl: { signal: AbortSignal; onStepEnd: (i: number, t: number, z: Tensor) => void }) => Promise<unknown>): Promise<Tensor[]> {
    const ac = new AbortController();
    const seen: Tensor[] = [];
    const onStepEnd = (_i: number, _t: number, z: Tensor): void => {
      seen.push({ shape: [...z.shape], data: z.data.slice() });
      if (seen.length === n) ac.abort();
    };
    try {
      await go({ signal: ac.signal, onStepEnd });
    } catch (e) {
      if (!ac.signal.aborted) throw e;
    }
    assert.equal(seen.length, n, 'denoising steps seen');
    return seen;
  }
  const worstOf = (errs: number[]): string => errs.map((e) => e.toExponential(1)).join(', ');

  test(`${device}: tiny-sd21 (v-prediction, OpenCLIP text encoder) text-to-image g7.5, first ${STEPS} steps match StableDiffusionPipeline`, async () => {
    const m = 'tiny-sd21', gold = golden(m, 'pipeline_t2i');
    const x = JSON.parse(fs.readFileSync(goldenPath(m, 'pipeline_t2i.json'), 'utf8')) as typeof meta;
    const c = x.cases.find((k) => k.guidance_scale > 1)!;
    const steps = await firstSteps(STEPS, (ctl) => textToImage(openCheckpoint(modelDir(m)), {
      prompt: c.prompt, negativePrompt: c.negative_prompt ?? undefined, steps: x.num_inference_steps, guidance: c.guidance_scale,
      width: x.width, height: x.height, latents: gold.latents_in!, latentsOnly: true, ...ctl,
    }));
    const errs = steps.map((z, i) => close(z, gold[`${c.prefix}.step_${i}.latents_after`]!, LATENT_TOL, `${device} ${m} step ${i}`));
    console.log(`${device} ${m} t2i ${c.prefix}: latents after steps 0..${STEPS - 1} max abs err ${worstOf(errs)}`);
  });

  test(`${device}: tiny-sdxl (two text encoders, pooled text, time ids) text-to-image DDIM g5, first ${STEPS} steps match StableDiffusionXLPipeline`, async () => {
    const m = 'tiny-sdxl', gold = golden(m, 'pipeline_t2i_ddim');
    const x = JSON.parse(fs.readFileSync(goldenPath(m, 'pipeline_t2i_ddim.json'), 'utf8')) as { prompt: string; negative_prompt: string; num_inference_steps: number; guidance_scale: number; width: number; height: number };
    const steps = await firstSteps(STEPS, (ctl) => textToImage(openCheckpoint(modelDir(m)), {
      prompt: x.prompt, negativePrompt: x.negative_prompt, steps: x.num_inference_steps, guidance: x.guidance_scale, width: x.width, height: x.height,
      latents: gold.latents_in!, scheduler: 'ddim', latentsOnly: true, ...ctl,
    }));
    const errs = steps.map((z, i) => close(z, gold[`step_${i}.latents_after`]!, LATENT_TOL, `${device} ${m} step ${i}`));
    console.log(`${device} ${m} t2i ddim: latents after steps 0..${STEPS - 1} max abs err ${worstOf(errs)}`);
  });

  test(`${device}: DDIM inversion (tiny-sd15): VAE-encoded z_0, then the first ${STEPS} inverse steps (their UNet inputs z_i and noise predictions) match diffusers`, async () => {
    const gold = golden(M, 'ddim_inversion');
    const inv = JSON.parse(fs.readFileSync(goldenPath(M, 'ddim_inversion.json'), 'utf8')) as { prompt: string; num_inference_steps: number };
    const ck = openCheckpoint(modelDir(M));
    // The inversion reports no per-step results: watch its UNet calls (the sample fed is z_i, the output eps_i).
    const unet = ck.unet(), call = unet.run.bind(unet), ac = new AbortController();
    const zs: Tensor[] = [], eps: Tensor[] = [];
    unet.run = async (a) => {
      zs.push(a.sample);
      const out = await call(a);
      eps.push(out.noisePred);
      if (eps.length === STEPS) ac.abort();
      return out;
    };
    await invert(ck, await readImageRGB(goldenPath(M, 'inversion_input.png')), { prompt: inv.prompt, steps: inv.num_inference_steps, signal: ac.signal })
      .catch((e: unknown) => { if (!ac.signal.aborted) throw e; });
    assert.equal(eps.length, STEPS, 'inverse steps seen');
    const at = (t: Tensor, i: number): Tensor => ({ shape: t.shape.slice(1), data: rows(t, i).data });
    const zErr = zs.map((z, i) => close(z, at(gold.chain!, i), LATENT_TOL, `${device} inversion z_${i}`));
    const eErr = eps.map((e, i) => close(e, at(gold.noise_preds!, i), LATENT_TOL, `${device} inversion eps_${i}`));
    console.log(`${device} ${M} inversion: z_0..z_${STEPS - 1} max abs err ${worstOf(zErr)}; noise predictions ${worstOf(eErr)}`);
  });

  /** An inversion chain z_0 .. z_N given by a golden (the reference rows read it; the inversion itself is tested above). */
  const givenInversion = (chain: Tensor[]): Inversion => ({ chain, timesteps: [], noisePreds: [], hSpace: new Map(), promptEmbeds: undefined, conditioning: undefined });
  const chainRows = (t: Tensor): Tensor[] => Array.from({ length: t.shape[0]! }, (_, i) => ({ shape: [1, ...t.shape.slice(-3)], data: rows(t, i).data }));

  test(`${device}: vary InDetail-IP (reference attention, stratified) first ${STEPS} steps from the official inversion match the official code`, async () => {
    const gold = golden(M, 'indetail_ip');
    const s = (JSON.parse(fs.readFileSync(goldenPath(M, 'indetail_ip.json'), 'utf8')) as {
      settings: { prompt: string; inv_prompt: string; negative_prompt: string; ddim_step: number; cfg: number; num_samples: number; seed: number; ap_kwargs: { end_stratified_attention: number; lambda_img: number } };
    }).settings;
    // One sample of the official two (its initial noise given): every sample reads the reference row alone, so
    // the first one is the same with K = 1, and the UNet batch is 3 rows instead of 5.
    const steps = await firstSteps(STEPS, async (ctl) => vary(openCheckpoint(modelDir(M)), {
      reference: await readImageRGB(goldenPath(M, 'inversion_input.png')),
      method: createMethod('indetail-ip', s.ddim_step, { stratifiedSteps: s.ap_kwargs.end_stratified_attention, lambdaP: s.ap_kwargs.lambda_img, lambdaG: 1 }),
      prompt: s.prompt, inversionPrompt: s.inv_prompt, negativePrompt: s.negative_prompt, steps: s.ddim_step, guidance: s.cfg,
      numImages: 1, latents: rows(gold.initial_noise!, 0), inversion: givenInversion(chainRows(gold.zts!).reverse()), ...ctl,
    }));
    // golden rows: 0 = the reconstruction branch (replaced by zts[i + 1]), 1..K the samples
    const errs = steps.map((z, i) => close(z, rows(gold[`step_${i}.latents_after`]!, 1), LATENT_TOL, `${device} indetail-ip step ${i}`));
    console.log(`${device} ${M} indetail-ip: latents after steps 0..${STEPS - 1} max abs err ${worstOf(errs)}`);
  });

  // CI time: the baseline shares every kernel with InDetail-IP's test but its own attention layout; full runs only.
  test(`${device}: vary kv-concat (official RIVAL, a baseline) first ${STEPS} steps from the official inversion match the official script`, { skip: !full && 'VISPROMPT_WEBGPU_FULL=1 runs it' }, async () => {
    const gold = golden(M, 'rival');
    const r = (JSON.parse(fs.readFileSync(goldenPath(M, 'rival.json'), 'utf8')) as { settings: { img_config: { prompt: string; prompt_postfix: string; neg_prompt: string } } }).settings.img_config;
    const prompt = r.prompt + r.prompt_postfix;
    const steps = await firstSteps(STEPS, async (ctl) => vary(openCheckpoint(modelDir(M)), {
      reference: await readImageRGB(goldenPath(M, 'rival_input.png')), method: createMethod('kv-concat', 4, { tAlign: 600, tEarly: 600, permutationSeed: 42 }),
      prompt, inversionPrompt: prompt, negativePrompt: r.neg_prompt, steps: 4, guidance: 5, noise: createNoise('torch', 42),
      inversion: givenInversion(chainRows(gold.chain!)), ...ctl,
    }));
    const errs = steps.map((z, i) => close(z, rows(gold[`step_${i}.latents_after`]!, 1), LATENT_TOL, `${device} kv-concat step ${i}`));
    console.log(`${device} ${M} kv-concat (RIVAL): latents after steps 0..${STEPS - 1} max abs err ${worstOf(errs)}`);
  });
}
