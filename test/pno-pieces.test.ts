/**
 * PNO's pieces that run no model (src/methods/vcf/pno.ts): the linear form z' = A z + B out of the DDIM step its
 * backward pass uses, checked against DDIMScheduler.step itself for every prediction type; the scheduler refusals
 * (clip_sample true, a bad value naming the checkpoint's file) before anything is compiled; and which way the chain
 * is differentiated (checkpointing: the stepwise UNet calls; checkpointing false: one whole graph), seen through a
 * stand-in checkpoint that fails loudly in either. Milliseconds (mutation slice methods-numeric).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { Checkpoint } from '../src/components/checkpoint.js';
import type { ImageFeatureTower } from '../src/methods/clip-guidance.js';
import { pnoLossAndGrads, stepCoefficients, type PnoProblem } from '../src/methods/vcf/pno.js';
import { DDIMScheduler } from '../src/schedulers/ddim.js';
import type { Tensor } from '../src/tensor.js';

const SD = { _class_name: 'DDIMScheduler', num_train_timesteps: 1000, beta_start: 0.00085, beta_end: 0.012, beta_schedule: 'scaled_linear', clip_sample: false, set_alpha_to_one: false, steps_offset: 1 };
const FILE = 'stand-in/scheduler/scheduler_config.json';

test('the DDIM step is A z + B out with A, B from stepCoefficients, for epsilon, v_prediction and sample', () => {
  const z = Float32Array.from({ length: 16 }, (_, i) => Math.sin(i * 1.3));
  const out = Float32Array.from({ length: 16 }, (_, i) => Math.cos(i * 0.7) * 0.8);
  for (const type of ['epsilon', 'v_prediction', 'sample']) {
    const s = new DDIMScheduler({ ...SD, prediction_type: type });
    s.setTimesteps(4);
    for (const t of s.timesteps) {
      const { A, B } = stepCoefficients(s, t);
      const want = s.step(out, t, z).prevSample;
      const err = Math.max(...want.map((w, j) => Math.abs(A * z[j]! + B * out[j]! - w)));
      assert.ok(err < 2e-5, `${type} t=${t}: max |A z + B out - step| = ${err} (A ${A}, B ${B})`);
    }
  }
});

const t4 = (shape: number[]): Tensor => ({ shape, data: new Float32Array(shape.reduce((a, b) => a * b, 1)) });
const problem: PnoProblem = { zT: t4([1, 4, 8, 8]), c: t4([1, 2, 8]), u: t4([1, 2, 8]), steps: 2, guidance: 3, reference: t4([1, 4]) };
const tower = { id: 'stand-in-tower', imageSize: 8, mean: [0, 0, 0], std: [1, 1, 1], features: () => { throw new Error('tower reached'); } } as unknown as ImageFeatureTower;
/** UNet calls one by one throw 'stepwise'; building the whole graph (reading the weights) throws 'whole graph'. */
function standIn(raw: object = SD): Checkpoint {
  const unet = { config: {}, get weights(): never { throw new Error('whole graph'); }, async run(): Promise<never> { throw new Error('stepwise'); } };
  return { path: 'pno-stand-in', unet: () => unet, schedulerConfig: () => ({ raw, file: FILE }), vae: () => { throw new Error('vae reached'); } } as unknown as Checkpoint;
}

test('PNO: checkpointing (the default) steps the UNet call by call, checkpointing false builds one graph', async () => {
  await assert.rejects(pnoLossAndGrads(standIn(), tower, problem), { message: 'stepwise' });
  await assert.rejects(pnoLossAndGrads(standIn(), tower, problem, { checkpointing: true }), { message: 'stepwise' });
  await assert.rejects(pnoLossAndGrads(standIn(), tower, problem, { checkpointing: false }), { message: 'whole graph' });
});

test('PNO: a scheduler with clip_sample, or a bad scheduler value, is refused naming the file, either way', async () => {
  for (const checkpointing of [true, false]) {
    await assert.rejects(pnoLossAndGrads(standIn({ ...SD, clip_sample: true }), tower, problem, { checkpointing }), {
      name: 'InputError',
      message: `--pno-steps: Prompt-Noise Optimization differentiates through DDIM steps without sample clipping; ${FILE} has clip_sample true (expected false)`,
    });
    await assert.rejects(pnoLossAndGrads(standIn({ ...SD, beta_schedule: 'cosine' }), tower, problem, { checkpointing }), {
      message: `${FILE} [beta_schedule]: expected one of linear, scaled_linear, squaredcos_cap_v2, got "cosine"`,
    });
  }
});
