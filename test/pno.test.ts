import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { pnoLossAndGrads, type PnoProblem } from '../src/methods/vcf/pno.js';
import type { Checkpoint } from '../src/components/checkpoint.js';
import type { ImageFeatureTower } from '../src/methods/clip-guidance.js';
import { InputError } from '../src/errors.js';
import { maxAbsDiff } from '../src/tensor.js';
import { close, golden, modelDir } from './helpers.js';

test('Prompt-Noise Optimization: loss and d loss / d z_T, d c equal the golden, with and without checkpointing', async () => {
  const g = golden('grads', 'pno');
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const tower = towerOfCLIPModel(CLIPModel.open(modelDir('tiny-clip')));
  const problem = { zT: g.z_T!, c: g.c!, u: g.u!, steps: 2, guidance: 5, reference: g.e_ref! };
  const out: string[] = [];
  const results = [];
  for (const checkpointing of [true, false]) {
    const r = await pnoLossAndGrads(ck, tower, problem, { checkpointing });
    results.push(r);
    close(r.finalLatents, g.final_latents!, 1e-4, 'final latents');
    assert.ok(Math.abs(r.loss - g.loss!.data[0]!) < 1e-5, `loss ${r.loss} vs ${g.loss!.data[0]}`);
    const rel = (a: typeof r.gradZT, b: typeof r.gradZT) => maxAbsDiff(a, b) / Math.max(...b.data.map(Math.abs));
    const ez = rel(r.gradZT, g['grad.z_T']!), ec = rel(r.gradC, g['grad.c']!);
    assert.ok(ez < 1e-3 && ec < 1e-3, `grad rel err z_T ${ez}, c ${ec}`);
    out.push(`${checkpointing ? 'checkpointed' : 'whole graph'}: loss ${r.loss.toFixed(7)}, grad z_T ${ez.toExponential(1)}, grad c ${ec.toExponential(1)}`);
  }
  assert.ok(maxAbsDiff(results[0]!.gradZT, results[1]!.gradZT) / Math.max(...results[1]!.gradZT.data.map(Math.abs)) < 1e-4);
  console.log(`pno (golden loss ${g.loss!.data[0]!.toFixed(7)}; max|err|/max|grad|): ${out.join('; ')}`);
});

test('PNO on a model whose scheduler clips samples: a one-line error naming the flag and the config file', async () => {
  const ck = { schedulerConfig: () => ({ file: 'm/scheduler/scheduler_config.json', raw: { clip_sample: true } }) } as unknown as Checkpoint;
  for (const checkpointing of [true, false]) {
    await assert.rejects(pnoLossAndGrads(ck, {} as ImageFeatureTower, { steps: 2 } as PnoProblem, { checkpointing }),
      (e: Error) => e instanceof InputError && e.message === '--pno-steps: Prompt-Noise Optimization differentiates through DDIM steps without sample clipping; m/scheduler/scheduler_config.json has clip_sample true (expected false)');
  }
});
