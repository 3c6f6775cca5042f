// Baselines at parity with their official runs (goldens of generate_eval.py): torch.randperm bit for bit,
// kv-concat = official RIVAL (rival/test_variation_sdv1.py on tiny-sd15), kv-replace = official MasaCtrl
// (playground_real.ipynb: guided inversion, free-running source row, MutualSelfAttentionControl(4, 10)).
import test from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { goldenPath, modelDir } from './helpers.js';
import { SafetensorsFile, readAllFloat32 } from '../src/io/safetensors.js';
import { readImageRGB } from '../src/io/image.js';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { createMethod } from '../src/methods/index.js';
import { createNoise } from '../src/noise/gaussian.js';
import { torchRandperm } from '../src/noise/randperm.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { vary } from '../src/pipelines/vary.js';
import { maxAbsDiff, rows } from '../src/tensor.js';
import { masactrlReferencePixels } from '../src/methods/masactrl.js';
import type { Inversion } from '../src/pipelines/invert.js';
import { torchNearestIndices } from '../src/io/torch-nearest.js';

test('torchRandperm equals torch.manual_seed(s); torch.randperm(n), and the draws after it continue the stream', () => {
  const meta = JSON.parse(fs.readFileSync(goldenPath('rng', 'randperm.json'), 'utf8')) as { seeds: number[]; n: number[] };
  const f = SafetensorsFile.open(goldenPath('rng', 'randperm.safetensors'));
  const g = readAllFloat32(goldenPath('rng', 'randperm.safetensors'));
  try {
    for (const s of meta.seeds) {
      for (const n of meta.n) {
        const gen = new TorchGenerator(s);
        assert.deepEqual(torchRandperm(gen, n), f.readInts(`seed_${s}.n_${n}.perm`).data.map(Number), `seed ${s} n ${n}`);
        assert.deepEqual([...gen.rand([5])], [...g[`seed_${s}.n_${n}.rand_5`]!.data], `seed ${s} n ${n}: rand(5) after the permutation`);
      }
    }
  } finally {
    f.close();
  }
});

test('vary --method kv-concat equals the official RIVAL run (inverted z_T permuted by torch.randperm after manual_seed)', async () => {
  const m = JSON.parse(fs.readFileSync(goldenPath('tiny-sd15', 'rival.json'), 'utf8')) as { settings: { img_config: { prompt: string; prompt_postfix: string; neg_prompt: string } } };
  const g = readAllFloat32(goldenPath('tiny-sd15', 'rival.safetensors'));
  const s = m.settings, prompt = s.img_config.prompt + s.img_config.prompt_postfix;
  const perm = (SafetensorsFile.open(goldenPath('tiny-sd15', 'rival.safetensors'))).readInts('permutation').data.map(Number);
  let initErr = Infinity;
  const method = createMethod('kv-concat', 4, { tAlign: 600, tEarly: 600, permutationSeed: 42 });
  const inner = method.initialLatents.bind(method);
  const spy = { ...method, initialLatents: (noise: Parameters<typeof inner>[0], zT: Parameters<typeof inner>[1], rng: Parameters<typeof inner>[2]) => {
    const out = inner(noise, zT, rng);
    // row 1 of the official initial latents = x_T gathered by the permutation
    const n = 256;
    const want = new Float32Array(4 * n);
    for (let c = 0; c < 4; c++) for (let i = 0; i < n; i++) want[c * n + i] = zT.data[c * n + perm[i]!]!;
    assert.equal(maxAbsDiff(out.data, want), 0, 'the permutation is the official one');
    initErr = maxAbsDiff(out.data, rows(g['initial_latents']!, 1).data);
    return out;
  } };
  const r = await vary(openCheckpoint(modelDir('tiny-sd15')), {
    reference: await readImageRGB(goldenPath('tiny-sd15', 'rival_input.png')), method: spy, prompt, inversionPrompt: prompt,
    negativePrompt: s.img_config.neg_prompt, steps: 4, guidance: 5, noise: createNoise('torch', 42),
  });
  const err = maxAbsDiff(r.latents.data, rows(g['final_latents']!, 1).data);
  console.log(`RIVAL: initial latents ${initErr}, final latents max abs err ${err}`);
  assert.ok(initErr < 1e-4, `initial latents ${initErr}`);
  assert.ok(err < 1e-3, `final latents ${err}`);
});

test('torch nearest interpolate: source indices as F.interpolate(mode="nearest") on CPU', () => {
  // floor(i * (float) in / out), clamped; out == 2 in halves the index
  assert.deepEqual([...torchNearestIndices(80, 64)].slice(0, 6), [0, 1, 2, 3, 5, 6]);
  assert.deepEqual([...torchNearestIndices(96, 64)].slice(0, 6), [0, 1, 3, 4, 6, 7]);
  assert.deepEqual([...torchNearestIndices(3, 6)], [0, 0, 1, 1, 2, 2]);
  assert.deepEqual([...torchNearestIndices(3, 7)], [0, 0, 0, 1, 1, 2, 2]);
  assert.deepEqual([...torchNearestIndices(10, 3)], [0, 3, 6]);
});

test('vary --method kv-replace equals the official MasaCtrl real-image editing run (target row)', async () => {
  const m = JSON.parse(fs.readFileSync(goldenPath('tiny-sd15', 'masactrl.json'), 'utf8')) as { settings: Record<string, unknown> & { source_prompt: string; target_prompt: string; guidance_scale: number; num_inference_steps: number; image_size_hw: [number, number] } };
  const s = m.settings, g = readAllFloat32(goldenPath('tiny-sd15', 'masactrl-trimmed.safetensors'));
  const [h, w] = s.image_size_hw, steps = s.num_inference_steps;
  const input = await readImageRGB(goldenPath('tiny-sd15', 'masactrl_input.png'));
  // load_image: read_image, / 127.5 - 1, F.interpolate nearest to (h, w) from 96x80
  assert.equal(maxAbsDiff(masactrlReferencePixels(input, w, h).data, g['source_image']!.data), 0, 'the official load_image');
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const chain = g['inversion.chain']!;
  const run = async (inversion?: Inversion) => {
    let stepErr = 0;
    const r = await vary(ck, {
      reference: input, method: createMethod('kv-replace', steps, { startStep: s['STEP (start_step)'] as number, startLayer: s['LAYPER (start_layer)'] as number }),
      prompt: s.target_prompt, inversionPrompt: s.source_prompt, steps, guidance: s.guidance_scale, inversionGuidance: s.guidance_scale, width: w, height: h,
      noise: createNoise('torch', 0), inversion, // (the noise is not drawn from: every row starts from z_T)
      onStepEnd: (i, _t, lat) => { stepErr = Math.max(stepErr, maxAbsDiff(lat.data, rows(g[`masactrl.step_${i}.latents_after`]!, 1).data)); },
    });
    return { r, stepErr, err: maxAbsDiff(r.latents.data, rows(g['masactrl.final_latents']!, 1).data) };
  };
  // End to end: the official image load, the guided inversion, the free-running source row and the control.
  const full = await run();
  const invErr = Math.max(...full.r.inversion.chain.map((z, i) => maxAbsDiff(z.data, rows(chain, i).data)));
  // The sampling alone, from the official inversion chain (its z_T): the method's own parity.
  const fromChain = await run({ chain: Array.from({ length: steps + 1 }, (_, i) => ({ shape: [1, 4, h / 4, w / 4], data: rows(chain, i).data })), timesteps: [], noisePreds: [], hSpace: new Map(), promptEmbeds: undefined, conditioning: undefined });
  // Everything after the VAE encoder (guided inversion, source and target rows, control), from the official z_0.
  const vae = ck.vae(), z0 = { shape: [1, 4, h / 4, w / 4], data: rows(chain, 0).data };
  ck.useAutoencoder({ scaleFactor: vae.scaleFactor, encodeToLatents: async () => z0, decode: (l) => vae.decode(l) });
  const fromZ0 = await run();
  ck.useAutoencoder(undefined);
  const zTErr = maxAbsDiff(fromZ0.r.inversion.chain[steps]!.data, rows(chain, steps).data);
  console.log(`MasaCtrl: inversion chain ${invErr}; target latents from the official z_T: per step ${fromChain.stepErr}, final ${fromChain.err}; from the official z_0: z_T ${zTErr}, final ${fromZ0.err}; end to end: final ${full.err}`);
  assert.ok(invErr < 1e-4, `inversion chain ${invErr}`);
  assert.ok(fromChain.err < 1e-3, `final latents from the official inversion ${fromChain.err}`);
  assert.ok(fromZ0.err < 1e-3, `final latents from the official z_0 ${fromZ0.err}`);
  // End to end (our VAE encoder too) the run is ill-conditioned: z_0 differs from torch's by float32 rounding
  // (3.7e-7 max; torch's own z_0 is 3.4e-7 from the exact float64 value, ours 3.0e-7), and one ulp on half of
  // z_0 moves the final latents by 2.6e-4, so ~2e-3 there (an exact float64 encoder: 1.1e-3) is float32 noise,
  // not a method difference (see notes/masactrl.md): logged only.
});

test('kv-replace bookkeeping as MutualSelfAttentionControl: steps range(start_step, 50), blocks range(start_layer, 16), rows from z_T', () => {
  const mc = createMethod('kv-replace', 60, { startStep: 4, startLayer: 10 });
  assert.deepEqual([9, 10, 15, 16, 20].map((i) => mc.layer('', i)), [false, true, true, false, false], 'layer_idx = range(10, 16) (model_type SD) also on larger UNets');
  const at = (i: number) => mc.weights({ index: i, timestep: 0, steps: 60 }).cond.fixedRef;
  assert.deepEqual([3, 4, 49, 50, 59].map(at), [0, 1, 1, 0, 0], 'step_idx = range(4, 50): total_steps 50 whatever --steps');
  const zT = { shape: [1, 2, 1, 1], data: Float32Array.from([1, 2]) }, noise = { shape: [2, 2, 1, 1], data: Float32Array.from([5, 6, 7, 8]) };
  assert.deepEqual([...mc.initialLatents(noise, zT, undefined).data], [1, 2, 1, 2], 'every generated row starts from z_T');
  assert.ok(mc.run?.freeReference && mc.run.inversionGuidance === 'sampling' && mc.run.referencePixels, 'the official run settings');
  const old = createMethod('kv-replace', 60, { fromNoise: true });
  assert.deepEqual([...old.initialLatents(noise, zT, undefined).data], [5, 6, 7, 8]);
  assert.equal(old.run, undefined);
});
