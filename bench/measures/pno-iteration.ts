/**
 * pno_iteration: one PNO loss + gradient (SD 1.5 UNet + VAE, random weights; tiny CLIP tower), one line per
 * mode (checkpointing true / false) at latents min(--size, 32), plus checkpointed at 64 when --size is 64
 * (killed, and reported as an error line, if its RSS passes 20 GiB).
 */
import path from 'node:path';
import { Checkpoint } from '../../src/components/checkpoint.js';
import { CLIPModel } from '../../src/components/clip-model.js';
import { CLIPTokenizer } from '../../src/io/clip-tokenizer.js';
import { towerOfCLIPModel } from '../../src/methods/clip-guidance.js';
import { pnoLossAndGrads } from '../../src/methods/vcf/pno.js';
import type { Tensor } from '../../src/tensor.js';
import { hasNonFinite } from '../../src/tensor.js';
import { fmtGiB, fmtS, log, median, mib, now, ortOptionsField, peakRssMib, randomTensor, round, rssMib, sessionsField, spawnMeasure, timeSessionCreates, TINY_MODELS, LOAD_AT_START, type Job, type Measure, type Options, type Result } from '../harness.js';
import { RandomWeights, unetWeightTable, vaeWeightTable } from '../random-weights.js';
import { randomComponent, SD15_SCHEDULER, SD15_UNET, SD15_VAE, sd15UnetConfig, sd15VaeConfig } from '../sd15.js';

/** Environment variable by which the parent hands a child its PNO mode and size. */
const ENV_PNO = 'VISPROMPT_BENCH_PNO';
/** RSS at which the bench kills a PNO child (the machine has 24 GiB, shared). */
const PNO_RSS_LIMIT_MIB = 20 * 1024;

/** pno_iteration, the child: one PNO loss + gradient on SD 1.5 UNet + VAE (random weights) with the tiny CLIP tower. */
async function pnoBench(opts: Options): Promise<Result> {
  const spec = JSON.parse(process.env[ENV_PNO] ?? '{}') as { mode?: 'checkpointed' | 'whole_graph'; size?: number };
  const mode = spec.mode ?? 'checkpointed', s = spec.size ?? Math.min(opts.size, 32);
  const creates = timeSessionCreates();
  const unetRw = new RandomWeights('random SD 1.5 UNet', unetWeightTable(sd15UnetConfig()));
  const vaeRw = new RandomWeights('random SD 1.5 VAE', vaeWeightTable(sd15VaeConfig()));
  const component = randomComponent;
  const ck = Checkpoint.fromSources('bench-sd15-random-pno', { unet: component('unet', SD15_UNET, unetRw), vae: component('vae', SD15_VAE, vaeRw) }, SD15_SCHEDULER, () => CLIPTokenizer.bundled());
  const tower = towerOfCLIPModel(CLIPModel.open(path.join(TINY_MODELS, 'tiny-clip')));
  const problem = {
    zT: randomTensor([1, 4, s, s], 1), c: randomTensor([1, 77, 768], 2), u: { shape: [1, 77, 768], data: new Float32Array(77 * 768) },
    steps: 2, guidance: 5, reference: randomTensor([1, 32], 3),
  };
  log(`pno_iteration: ${mode}, latents ${s}x${s} (${s * 8}x${s * 8} px), 2 DDIM steps, guidance 5`);
  const times: number[] = [];
  const cpu0 = process.cpuUsage();
  let r: Awaited<ReturnType<typeof pnoLossAndGrads>> | undefined;
  let firstCreate = 0;
  const runs = 1 + (opts.runs ?? 0);
  for (let i = 0; i < runs; i++) {
    const t0 = now();
    r = await pnoLossAndGrads(ck, tower, problem, { checkpointing: mode === 'checkpointed' });
    times.push(now() - t0);
    if (i === 0) firstCreate = creates.reduce((a, c) => a + (c.end - c.start), 0);
    log(`pno_iteration: call ${i + 1}/${runs} ${times[i]!.toFixed(1)} s, loss ${r.loss.toFixed(5)} (RSS ${rssMib().toFixed(0)} MiB, peak ${peakRssMib().toFixed(0)} MiB)`);
  }
  const wall = times.reduce((a, b) => a + b, 0);
  const cpu = process.cpuUsage(cpu0);
  const warm = times.slice(1);
  const norm = (t: Tensor): number => Math.sqrt(t.data.reduce((a, x) => a + x * x, 0));
  const weightsS = unetRw.generateSeconds + vaeRw.generateSeconds;
  return {
    measure: 'pno_iteration', mode,
    median_s: round(warm.length ? median(warm) : times[0]!), min_s: round(Math.min(...(warm.length ? warm : times))), gflops: null,
    peak_rss_mib: Math.round(peakRssMib()), build_s: round(firstCreate),
    first_call_s: round(times[0]!), runs: times.length, times_s: times.map((t) => round(t)), flops: null,
    wall_minus_create_s: round(times[0]! - firstCreate),
    cpu_util: round((cpu.user + cpu.system) / 1e6 / wall, 2),
    loadavg_1m: round(LOAD_AT_START, 2),
    weights_s: round(weightsS),
    weights_mib: Math.round(mib((unetRw.parameterCount + vaeRw.parameterCount) * 4)),
    weights_read_mib: Math.round(mib(unetRw.readBytes + vaeRw.readBytes)),
    sessions: sessionsField(creates),
    loss: round(r!.loss, 5), grad_z_norm: round(norm(r!.gradZT)), grad_c_norm: round(norm(r!.gradC)),
    finite: Number.isFinite(r!.loss) && !hasNonFinite(r!.gradZT) && !hasNonFinite(r!.gradC),
    size: s, steps: 2,
    threads: opts.threads ?? 'default',
    ...ortOptionsField(opts),
    note: `pnoLossAndGrads, checkpointing: ${mode === 'checkpointed'}, SD 1.5 UNet + VAE (random weights, in memory), latents ${s}x${s}, 2 DDIM steps, guidance 5, c random [1, 77, 768], u zeros, reference random [1, 32]; the CLIP tower is test/fixtures/models/tiny-clip on purpose (the cost is in the UNet and VAE); first call is cold: build_s = ORT InferenceSession.create seconds in it (excludes JS graph build / autodiff), weights_s = random-weight generation in it${warm.length ? '; median_s/min_s over the warm calls' : '; median_s = min_s = the cold call (--runs N adds warm calls)'}`,
  };
}

function jobs(opts: Options): Job[] {
  const m = 'pno_iteration';
  const small = Math.min(opts.size, 32);
  const specs: { mode: 'checkpointed' | 'whole_graph'; size: number; expectFailure?: boolean }[] = [
    { mode: 'checkpointed', size: small }, { mode: 'whole_graph', size: small },
  ];
  if (opts.size >= 64) specs.push({ mode: 'checkpointed', size: 64, expectFailure: true });
  return specs.map((spec) => ({
    measure: m, label: { mode: spec.mode, size: spec.size }, expectFailure: spec.expectFailure,
    run: (argv) => spawnMeasure(m, argv, { env: { [ENV_PNO]: JSON.stringify(spec) }, rssLimitMib: PNO_RSS_LIMIT_MIB }),
  }));
}

function describe(r: Result): string {
  return `${r.measure} ${r.mode} ${r.size}x${r.size}: ${fmtS(r.first_call_s)} cold (ORT session creation ${fmtS(r.build_s ?? 0)}, random weights ${fmtS(r.weights_s ?? 0)})${r.runs > 1 ? `, warm ${fmtS(r.median_s)}` : ''}; peak RSS ${fmtGiB(r.peak_rss_mib)}; loss ${r.loss}${r.finite === false ? ' [not finite!]' : ''}`;
}

export const pnoIteration: Measure = { name: 'pno_iteration', run: pnoBench, jobs, describe };
