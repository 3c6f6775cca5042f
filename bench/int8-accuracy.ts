/**
 * --precision int8 against float32 on the full-size SD 1.5 UNet of random weights (issue 15): the relative
 * error ||int8 - fp32|| / ||fp32|| of one CFG UNet call and of the final latents after N DDIM steps (guidance
 * 7.5, the same initial latents and random text embeddings). Not part of `npm run bench` (minutes of compute):
 *   node dist/bench/int8-accuracy.js [--size 64] [--steps 20]
 */
import { UNet } from '../src/components/unet.js';
import { WeightsView } from '../src/io/weights.js';
import { createScheduler } from '../src/schedulers/index.js';
import type { Tensor } from '../src/tensor.js';
import { randomTensor } from './harness.js';
import { RandomWeights, unetWeightTable } from './random-weights.js';
import { SD15_SCHEDULER, sd15UnetConfig } from './sd15.js';

const arg = (name: string, dflt: number): number => { const i = process.argv.indexOf(name); return i > 0 ? Number(process.argv[i + 1]) : dflt; };
const size = arg('--size', 64), steps = arg('--steps', 20), guidance = 7.5;

function relErr(a: Float32Array, b: Float32Array): number {
  let n = 0, d = 0;
  for (let i = 0; i < a.length; i++) { n += (a[i]! - b[i]!) ** 2; d += b[i]! ** 2; }
  return Math.sqrt(n / d);
}

const cfg = sd15UnetConfig();
const rw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(cfg));
const ehs = randomTensor([2, 77, cfg.crossAttentionDim], 2); // rows: unconditional, conditional
const z0 = randomTensor([1, 4, size, size], 1);

async function sample(precision: 'fp32' | 'int8'): Promise<{ first: Float32Array; final: Float32Array }> {
  const unet = new UNet({ kind: 'conditional', unet: cfg }, new WeightsView(rw), 'bench-int8-accuracy', precision);
  const sched = createScheduler('ddim', { file: 'SD 1.5 scheduler (bench)', raw: SD15_SCHEDULER });
  sched.setTimesteps(steps);
  let x: Float32Array = Float32Array.from(z0.data, (v) => v * sched.initNoiseSigma);
  let first: Float32Array | undefined;
  const n = x.length;
  for (const t of sched.timesteps) {
    const inp = sched.scaleModelInput(x, t);
    const both = new Float32Array(2 * n); both.set(inp); both.set(inp, n);
    const pred: Tensor = (await unet.run({ sample: { shape: [2, 4, size, size], data: both }, timestep: t, encoderHiddenStates: ehs })).noisePred;
    first ??= pred.data.slice();
    const eps = Float32Array.from({ length: n }, (_, i) => pred.data[i]! + guidance * (pred.data[n + i]! - pred.data[i]!));
    x = sched.step(eps, t, x).prevSample;
    process.stderr.write(`[int8-accuracy] ${precision} t=${t}\n`);
  }
  return { first: first!, final: x };
}

const f = await sample('fp32');
const q = await sample('int8');
console.log(JSON.stringify({ measure: 'int8_accuracy', size, steps, guidance, one_call_rel_error: Number(relErr(q.first, f.first).toPrecision(3)), final_latents_rel_error: Number(relErr(q.final, f.final).toPrecision(3)) }));
