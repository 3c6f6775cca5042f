// Baselines at parity with their official runs (goldens of generate_eval.py): torch.randperm bit for bit,
// kv-concat = official RIVAL (rival/test_variation_sdv1.py on tiny-sd15).
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
