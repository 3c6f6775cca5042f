/**
 * vary's clipSkip reaches every text encoding of the run: the reference's inversion (its prompt's
 * conditioning) and the sampling's rows [gen_uncond, ref_cond, gen_cond] are the text encoder's
 * encode(..., { clipSkip: 1 }) — hidden_states[-2] through the final layer norm (diffusers' clip_skip) — not the
 * last hidden state. Tiny SD 1.5, one step.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openCheckpoint } from '../src/components/checkpoint.js';
import type { UNetCall } from '../src/components/unet.js';
import { readImageRGB } from '../src/io/image.js';
import { createMethod } from '../src/methods/index.js';
import { createNoise } from '../src/noise/gaussian.js';
import { vary } from '../src/pipelines/vary.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { goldenPath, modelDir } from './helpers.js';

test('vary with clipSkip 1 conditions the inversion and the sampling on encode(..., { clipSkip: 1 })', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const unet = ck.unet();
  const contexts: Tensor[] = [];
  const run = unet.run.bind(unet);
  unet.run = (call: UNetCall) => { if (call.encoderHiddenStates) contexts.push(call.encoderHiddenStates); return run(call); };
  const r = await vary(ck, {
    reference: await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png')), method: createMethod('indetail-ip', 1),
    prompt: 'a cat', inversionPrompt: 'a photo of a dog', steps: 1, width: 64, height: 64, noise: createNoise('torch', 5), clipSkip: 1,
  });
  const te = ck.textEncoder();
  const skip1 = (await te.encode(['', 'a photo of a dog', 'a cat'], { clipSkip: 1 })).lastHiddenState;
  const last = (await te.encode(['', 'a photo of a dog', 'a cat'])).lastHiddenState;
  const row = (t: Tensor, i: number): Tensor => ({ shape: [1, ...t.shape.slice(1)], data: t.data.subarray(i * (t.data.length / t.shape[0]!), (i + 1) * (t.data.length / t.shape[0]!)) });

  // The inversion: one UNet call per step, conditioned on the inversion prompt.
  const inv = r.inversion.promptEmbeds!;
  const invErr = maxAbsDiff(inv, row(skip1, 1));
  assert.ok(invErr <= 1e-5, `inversion conditioning vs encode(clipSkip 1): ${invErr}`);
  assert.ok(maxAbsDiff(inv, row(last, 1)) > 1e-3, 'clip skip 1 differs from the last hidden state on this model (the check can fail)');
  assert.equal(contexts.length, 2, 'one inversion call and one sampling call');
  assert.ok(maxAbsDiff(contexts[0]!, row(skip1, 1)) <= 1e-5, 'the inversion\'s UNet call');

  // The sampling call (conflict-free guidance, K = 1): [gen_uncond "", ref_cond (inversion prompt), gen_cond].
  const sampling = contexts[1]!;
  assert.deepEqual(sampling.shape, skip1.shape);
  const err = maxAbsDiff(sampling, skip1);
  assert.ok(err <= 1e-5, `sampling conditioning vs encode(clipSkip 1): ${err}`);
  assert.ok(maxAbsDiff(sampling, last) > 1e-3);
  console.log(`clip skip 1: inversion max err ${invErr}, sampling max err ${err}`);
});
