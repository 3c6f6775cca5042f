// DDIM inversion with classifier-free guidance (MasaCtrl's `invert`, StyleAligned's `ddim_inversion`):
// every inverse step runs the UNet on [uncond "", cond prompt] and steps with uncond + g (cond - uncond).
import test from 'node:test';
import assert from 'node:assert/strict';
import { goldenPath, modelDir } from './helpers.js';
import { readImageRGB } from '../src/io/image.js';
import { openCheckpoint } from '../src/components/checkpoint.js';
import { defaultMicroConditioning } from '../src/components/prompt-conditioner.js';
import { imageToLatents, invert } from '../src/pipelines/invert.js';
import { classifierFreeGuidance } from '../src/pipelines/guidance.js';
import { createInverseScheduler } from '../src/schedulers/index.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';

test('invert with guidance > 1 = the guided inverse steps by hand; guidance 1 = the unguided inversion', async () => {
  const ck = openCheckpoint(modelDir('tiny-sd15'));
  const z0 = await imageToLatents(ck, await readImageRGB(goldenPath('tiny-sd15', 'inversion_input.png')));
  const prompt = 'a bowl of fruit on a table', g = 3.5, steps = 3;
  const guided = await invert(ck, z0, { prompt, steps, guidance: g });
  const emb = await ck.conditioner().encode(['', prompt]);
  const micro = defaultMicroConditioning(64, 64);
  const uncond = emb.rows(0).conditioning(micro), cond = emb.rows(1).conditioning(micro);
  const inv = createInverseScheduler(ck.schedulerConfig());
  inv.setTimesteps(steps);
  let z: Tensor = z0, err = 0;
  for (let i = 0; i < steps; i++) {
    const t = inv.timesteps[i]!;
    const u = (await ck.unet().run({ sample: z, timestep: t, ...uncond })).noisePred;
    const c = (await ck.unet().run({ sample: z, timestep: t, ...cond })).noisePred;
    const eps = classifierFreeGuidance(u.data, c.data, g);
    err = Math.max(err, maxAbsDiff(guided.noisePreds[i]!.data, eps));
    z = { shape: z.shape, data: inv.step(eps, t, z.data).prevSample };
    err = Math.max(err, maxAbsDiff(guided.chain[i + 1]!.data, z.data));
  }
  console.log(`guided inversion vs by hand: max abs err ${err}`);
  assert.ok(err < 1e-5, `guided inversion ${err}`);
  // The conditioning kept for later UNet calls is the prompt's row alone.
  assert.equal(maxAbsDiff(guided.conditioning!.encoderHiddenStates.data, cond.encoderHiddenStates.data), 0);
  const plain = await invert(ck, z0, { prompt, steps });
  const one = await invert(ck, z0, { prompt, steps, guidance: 1 });
  assert.equal(maxAbsDiff(one.chain[steps]!.data, plain.chain[steps]!.data), 0, 'guidance 1 is the unguided inversion');
  assert.ok(maxAbsDiff(guided.chain[steps]!.data, plain.chain[steps]!.data) > 1e-3, 'guidance changes the inversion');
  await assert.rejects(invert(ck, z0, { prompt, steps, guidance: Number.NaN }), /inversion guidance must be a number/);
});
