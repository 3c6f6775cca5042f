import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { FileFormatError, InputError } from '../src/errors.js';
import { SafetensorsFile, readAllFloat32 } from '../src/io/safetensors.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import {
  DDIMInverseScheduler, DDIMScheduler, ddimUpdate, parseDdimConfig, predictOriginalAndEpsilon, type DdimConfigJson,
} from '../src/schedulers/ddim.js';
import { torchLinspaceF32 } from '../src/schedulers/betas.js';

const FIXTURES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../test/fixtures');
const GOLDENS = path.join(FIXTURES, 'goldens');
const MODELS = ['tiny-sd15', 'tiny-sd21'] as const;

interface SchedulerGolden {
  ddim_config: DdimConfigJson;
  inverse_config: DdimConfigJson;
  set_timesteps: Record<string, number[]>;
  inverse_set_timesteps: Record<string, number[]>;
  steps: { num_inference_steps: number; timestep: number; prev_timestep: number; prefix: string }[];
  inverse_steps: { num_inference_steps: number; timestep: number; prefix: string }[];
}

function load(m: string): { meta: SchedulerGolden; t: Record<string, Tensor>; file: SafetensorsFile } {
  const meta = JSON.parse(fs.readFileSync(path.join(GOLDENS, m, 'scheduler.json'), 'utf8')) as SchedulerGolden;
  const p = path.join(GOLDENS, m, 'scheduler.safetensors');
  return { meta, t: readAllFloat32(p), file: SafetensorsFile.open(p) };
}

function modelConfig(m: string): DdimConfigJson {
  return JSON.parse(fs.readFileSync(path.join(FIXTURES, 'models', m, 'scheduler/scheduler_config.json'), 'utf8')) as DdimConfigJson;
}

test('betas and alphas_cumprod are bit-exact (both models, forward and inverse)', () => {
  for (const m of MODELS) {
    const { meta, t, file } = load(m);
    for (const s of [new DDIMScheduler(meta.ddim_config), new DDIMInverseScheduler(meta.inverse_config)]) {
      assert.equal(maxAbsDiff(s.betas, t['betas']!), 0, `${m} betas`);
      assert.equal(maxAbsDiff(s.alphasCumprod, t['alphas_cumprod']!), 0, `${m} alphas_cumprod`);
    }
    file.close();
  }
});

test('timesteps and inverse timesteps for N in 1, 4, 10, 50 are exact', () => {
  for (const m of MODELS) {
    const { meta, file } = load(m);
    const fwd = new DDIMScheduler(meta.ddim_config);
    const inv = new DDIMInverseScheduler(meta.inverse_config);
    for (const n of [1, 4, 10, 50]) {
      fwd.setTimesteps(n);
      inv.setTimesteps(n);
      assert.deepEqual(fwd.timesteps, file.readInts(`timesteps.N${n}`).data, `${m} N=${n}`);
      assert.deepEqual(fwd.timesteps, meta.set_timesteps[String(n)]);
      assert.deepEqual(inv.timesteps, file.readInts(`inverse_timesteps.N${n}`).data, `${m} inverse N=${n}`);
      assert.deepEqual(inv.timesteps, meta.inverse_set_timesteps[String(n)]);
    }
    file.close();
  }
});

test('DDIM step and inverse step match diffusers bit for bit (epsilon and v_prediction)', () => {
  for (const m of MODELS) {
    const { meta, t, file } = load(m);
    const fwd = new DDIMScheduler(meta.ddim_config);
    for (const s of meta.steps) {
      fwd.setTimesteps(s.num_inference_steps);
      assert.equal(fwd.prevTimestep(s.timestep), s.prev_timestep);
      const r = fwd.step(t[`${s.prefix}.model_output`]!.data, s.timestep, t[`${s.prefix}.sample`]!.data);
      assert.equal(maxAbsDiff(r.prevSample, t[`${s.prefix}.prev_sample`]!), 0, `${m} ${s.prefix}.prev_sample`);
      assert.equal(maxAbsDiff(r.predOriginalSample, t[`${s.prefix}.pred_original_sample`]!), 0, `${m} ${s.prefix}.pred_original_sample`);
    }
    const inv = new DDIMInverseScheduler(meta.inverse_config);
    for (const s of meta.inverse_steps) {
      inv.setTimesteps(s.num_inference_steps);
      const r = inv.step(t[`${s.prefix}.model_output`]!.data, s.timestep, t[`${s.prefix}.sample`]!.data);
      assert.equal(maxAbsDiff(r.prevSample, t[`${s.prefix}.prev_sample`]!), 0, `${m} ${s.prefix}.prev_sample`);
      assert.equal(maxAbsDiff(r.predOriginalSample, t[`${s.prefix}.pred_original_sample`]!), 0, `${m} ${s.prefix}.pred_original_sample`);
    }
    file.close();
  }
});

test('text-to-image sampling chain: steps fed with the golden UNet outputs reproduce the latents', () => {
  for (const m of MODELS) {
    const meta = JSON.parse(fs.readFileSync(path.join(GOLDENS, m, 'pipeline_t2i.json'), 'utf8')) as {
      num_inference_steps: number; cases: { prefix: string; guidance_scale: number; timesteps: number[] }[];
    };
    const t = readAllFloat32(path.join(GOLDENS, m, 'pipeline_t2i.safetensors'));
    for (const c of meta.cases) {
      const s = new DDIMScheduler(modelConfig(m));
      s.setTimesteps(meta.num_inference_steps);
      assert.deepEqual(s.timesteps, c.timesteps);
      let latents = t['latents_in']!.data;
      for (let i = 0; i < s.timesteps.length; i++) {
        const out = t[`${c.prefix}.step_${i}.unet_output`]!.data;
        let eps = out;
        if (c.guidance_scale > 1) {
          // diffusers: uncond + g * (cond - uncond), float32
          const n = out.length / 2;
          eps = new Float32Array(n);
          const g = Math.fround(c.guidance_scale);
          for (let k = 0; k < n; k++) eps[k] = out[k]! + Math.fround(g * Math.fround(out[n + k]! - out[k]!));
        }
        latents = s.step(eps, s.timesteps[i]!, latents).prevSample;
        assert.equal(maxAbsDiff(latents, t[`${c.prefix}.step_${i}.latents_after`]!), 0, `${m} ${c.prefix} step ${i}`);
      }
    }
  }
});

test('DDIM inversion chain: inverse steps fed with the golden UNet outputs reproduce the chain', () => {
  for (const m of MODELS) {
    const meta = JSON.parse(fs.readFileSync(path.join(GOLDENS, m, 'ddim_inversion.json'), 'utf8')) as { num_inference_steps: number; timesteps: number[] };
    const t = readAllFloat32(path.join(GOLDENS, m, 'ddim_inversion.safetensors'));
    const inv = new DDIMInverseScheduler(modelConfig(m));
    inv.setTimesteps(meta.num_inference_steps);
    assert.deepEqual(inv.timesteps, meta.timesteps);
    const chain = t['chain']!.data;
    const preds = t['noise_preds']!.data;
    const n = chain.length / (meta.num_inference_steps + 1);
    let z: Float32Array = chain.slice(0, n);
    for (let k = 0; k < meta.num_inference_steps; k++) {
      z = inv.step(preds.subarray(k * n, (k + 1) * n), inv.timesteps[k]!, z).prevSample;
      assert.equal(maxAbsDiff(z, chain.subarray((k + 1) * n, (k + 2) * n)), 0, `${m} inversion step ${k}`);
    }
  }
});

test('step() is predictOriginalAndEpsilon + ddimUpdate, usable for asymmetric steps', () => {
  const { meta, t, file } = load('tiny-sd21');
  file.close();
  const s = new DDIMScheduler(meta.ddim_config);
  s.setTimesteps(10);
  const mo = t['step.t601.model_output']!.data;
  const x = t['step.t601.sample']!.data;
  const { predOriginalSample, predEpsilon } = predictOriginalAndEpsilon('v_prediction', mo, x, s.alphaProd(601));
  const prev = ddimUpdate(predOriginalSample, predEpsilon, s.alphaProd(s.prevTimestep(601)));
  assert.equal(maxAbsDiff(prev, t['step.t601.prev_sample']!), 0);
  assert.equal(s.alphaProd(-99), s.alphasCumprod[0]); // set_alpha_to_one = false
});

test('eta > 0: variance noise follows the DDIM formula; a noise source is drawn like torch.randn', () => {
  const { meta, t, file } = load('tiny-sd15');
  file.close();
  const s = new DDIMScheduler(meta.ddim_config);
  s.setTimesteps(10);
  const mo = t['step.t601.model_output']!.data;
  const x = t['step.t601.sample']!.data;
  const eta = 0.7;
  const noise = new TorchGenerator(3).randn([x.length]);
  const r = s.step(mo, 601, x, { eta, noise });
  const a = s.alphasCumprod[601]!;
  const ap = s.alphasCumprod[501]!;
  const sigma = eta * Math.sqrt(((1 - ap) / (1 - a)) * (1 - a / ap));
  let err = 0;
  for (let i = 0; i < x.length; i++) {
    const x0 = (x[i]! - Math.sqrt(1 - a) * mo[i]!) / Math.sqrt(a);
    const want = Math.sqrt(ap) * x0 + Math.sqrt(1 - ap - sigma * sigma) * mo[i]! + sigma * noise[i]!;
    err = Math.max(err, Math.abs(r.prevSample[i]! - want));
  }
  assert.ok(err < 2e-6, `eta step error ${err}`);
  assert.ok(maxAbsDiff(r.prevSample, s.step(mo, 601, x).prevSample) > 0.01, 'the noise is actually added');
  assert.equal(maxAbsDiff(s.step(mo, 601, x, { eta, noise: new TorchGenerator(3) }).prevSample, r.prevSample), 0);
  assert.throws(() => s.step(mo, 601, x, { eta }), InputError);
  assert.throws(() => s.step(mo, 601, x, { eta: -1 }), InputError);
});

test('addNoise and getVelocity follow diffusers', () => {
  const s = new DDIMScheduler(modelConfig('tiny-sd15'));
  const g = new TorchGenerator(11);
  const x0 = g.randn([64]);
  const noise = g.randn([64]);
  const a = s.alphasCumprod[500]!;
  const noisy = s.addNoise(x0, noise, 500);
  const v = s.getVelocity(x0, noise, 500);
  for (let i = 0; i < 64; i++) {
    assert.ok(Math.abs(noisy[i]! - (Math.sqrt(a) * x0[i]! + Math.sqrt(1 - a) * noise[i]!)) < 1e-6);
    assert.ok(Math.abs(v[i]! - (Math.sqrt(a) * noise[i]! - Math.sqrt(1 - a) * x0[i]!)) < 1e-6);
  }
  assert.equal(s.initNoiseSigma, 1);
  assert.throws(() => s.addNoise(x0, noise, 1000), InputError);
});

test('timestep spacings trailing and linspace, prediction type sample, clipping', () => {
  const base = modelConfig('tiny-sd15');
  const trailing = new DDIMScheduler({ ...base, timestep_spacing: 'trailing' });
  trailing.setTimesteps(10);
  assert.deepEqual(trailing.timesteps, [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]);
  trailing.setTimesteps(3);
  assert.deepEqual(trailing.timesteps, [999, 666, 332]); // np.round(arange(1000, 0, -333.33)) - 1
  const lin = new DDIMScheduler({ ...base, timestep_spacing: 'linspace' });
  lin.setTimesteps(10);
  assert.deepEqual(lin.timesteps, [999, 888, 777, 666, 555, 444, 333, 222, 111, 0]);
  lin.setTimesteps(1);
  assert.deepEqual(lin.timesteps, [0]);
  const invTrailing = new DDIMInverseScheduler({ ...base, timestep_spacing: 'trailing' });
  invTrailing.setTimesteps(4);
  assert.deepEqual(invTrailing.timesteps, [249, 499, 749, 999]);

  const sample = new DDIMScheduler({ ...base, prediction_type: 'sample', clip_sample: true, clip_sample_range: 0.5 });
  sample.setTimesteps(10);
  const g = new TorchGenerator(4);
  const mo = g.randn([32]);
  const x = g.randn([32]);
  const r = sample.step(mo, 501, x);
  for (let i = 0; i < 32; i++) assert.equal(r.predOriginalSample[i], Math.min(0.5, Math.max(-0.5, mo[i]!)));
});

test('other beta schedules: linear, squaredcos_cap_v2, zero-terminal-SNR rescale, trained_betas, torch 2 linspace', () => {
  const base = modelConfig('tiny-sd15');
  const linear = new DDIMScheduler({ ...base, beta_schedule: 'linear', beta_start: 0.0001, beta_end: 0.02 });
  assert.equal(linear.betas[0], Math.fround(0.0001));
  assert.equal(linear.betas[999], Math.fround(0.02));
  const cos = new DDIMScheduler({ ...base, beta_schedule: 'squaredcos_cap_v2' });
  assert.equal(cos.betas[999], Math.fround(0.999));
  for (let i = 1; i < 1000; i++) assert.ok(cos.betas[i]! >= cos.betas[i - 1]!);
  const zsnr = new DDIMScheduler({ ...base, rescale_betas_zero_snr: true });
  const plain = new DDIMScheduler(base);
  assert.equal(zsnr.alphasCumprod[999], 0);
  assert.ok(Math.abs(zsnr.alphasCumprod[0]! - plain.alphasCumprod[0]!) < 1e-6);
  const trained = new DDIMScheduler({ ...base, trained_betas: Array.from(plain.betas) });
  assert.equal(maxAbsDiff(trained.alphasCumprod, plain.alphasCumprod), 0);
  // torch >= 2.0 fills linspace without vectorization: the same schedule to within a few ulp
  const t2 = new DDIMScheduler(base, { linspace: 'torch2' });
  assert.ok(maxAbsDiff(t2.betas, plain.betas) < 5e-9);
  assert.deepEqual(Array.from(torchLinspaceF32(0, 1, 3)), [0, 0.5, 1]);
});

test('bad scheduler configs and arguments give one-line errors naming the key', () => {
  const base = modelConfig('tiny-sd15');
  const expectKey = (cfg: DdimConfigJson, key: string, re: RegExp, inverse = false) => {
    assert.throws(
      () => (inverse ? new DDIMInverseScheduler(cfg, { source: 'sched.json' }) : new DDIMScheduler(cfg, { source: 'sched.json' })),
      (e: unknown) => e instanceof FileFormatError && e.key === key && re.test(e.message) && e.message.startsWith('sched.json') && !e.message.includes('\n'),
    );
  };
  expectKey({ ...base, beta_schedule: 'cosine' }, 'beta_schedule', /expected one of linear, scaled_linear, squaredcos_cap_v2, got "cosine"/);
  expectKey({ ...base, prediction_type: 'flow' }, 'prediction_type', /epsilon, v_prediction, sample, got "flow"/);
  expectKey({ ...base, timestep_spacing: 'uniform' }, 'timestep_spacing', /leading, trailing, linspace, got "uniform"/);
  expectKey({ ...base, timestep_spacing: 'linspace' }, 'timestep_spacing', /leading, trailing, got "linspace"/, true);
  expectKey({ ...base, thresholding: true }, 'thresholding', /not supported/);
  expectKey({ ...base, num_train_timesteps: 0 }, 'num_train_timesteps', /positive integer, got 0/);
  expectKey({ ...base, clip_sample: 'yes' as unknown as boolean }, 'clip_sample', /true or false, got "yes"/);
  expectKey({ ...base, trained_betas: [0.1, 0.2] }, 'trained_betas', /expected 1000 betas/);
  assert.throws(() => parseDdimConfig([1, 2]), FileFormatError);
  // diffusers ignores thresholding for the inverse scheduler and unknown keys everywhere
  assert.doesNotThrow(() => new DDIMInverseScheduler({ ...base, thresholding: true, skip_prk_steps: true }));

  const s = new DDIMScheduler(base);
  assert.throws(() => s.step(new Float32Array(4), 901, new Float32Array(4)), /setTimesteps/);
  for (const n of [0, 1001, 2.5]) assert.throws(() => s.setTimesteps(n), (e: unknown) => e instanceof InputError && /1 to 1000/.test(e.message));
  s.setTimesteps(10);
  assert.throws(() => s.step(new Float32Array(4), 1000, new Float32Array(4)), InputError);
  assert.throws(() => s.step(new Float32Array(4), 901, new Float32Array(5)), InputError);
});
