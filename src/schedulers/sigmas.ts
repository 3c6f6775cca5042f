/**
 * Timestep spacings and sigma schedules of diffusers' sigma-based schedulers. Two families:
 * - k-diffusion style (Euler, Euler ancestral, LMS, Heun): float32 timesteps `arange(N) * (T // N)`
 *   (+ steps_offset) for `leading`, sigmas interpolated in float64 then cast to float32;
 * - DPM-Solver style (DPM-Solver++ multistep, UniPC): int64 timesteps `arange(N + 1) * (last // (N + 1))`,
 *   reversed, the final 0 dropped (+ steps_offset) for `leading`.
 * Both append a final sigma (0, or the smallest training sigma) and keep N + 1 float32 sigmas.
 */
import { FileFormatError } from '../errors.js';
import { karrasSigmas, logF32, npArange, npInterpIndex, npLinspace, roundHalfEven, sigmaToT } from './numpy.js';
import type { SchedulerConfigReader, TimestepSpacing, TrainingSchedule } from './scheduler-config.js';
import { TIMESTEP_SPACINGS } from './scheduler-config.js';

const f = Math.fround;

/** `((1 - alphas_cumprod) / alphas_cumprod) ** 0.5` in float32 (torch), index = training timestep. */
export function trainingSigmas(alphasCumprod: Float32Array): Float32Array {
  return alphasCumprod.map((a) => f(Math.sqrt(f(f(1 - a) / a))));
}

export type FinalSigmasType = 'zero' | 'sigma_min';

/** The settings of a sigma schedule, read from the config with the class's defaults. */
export interface SigmaScheduleConfig {
  readonly timestepSpacing: TimestepSpacing;
  readonly stepsOffset: number;
  readonly useKarrasSigmas: boolean;
  readonly finalSigmasType: FinalSigmasType;
  /** Karras range overrides (EulerDiscreteScheduler only). */
  readonly sigmaMin: number | null;
  readonly sigmaMax: number | null;
}

export function readSigmaScheduleConfig(r: SchedulerConfigReader, opts: { spacingDefault: TimestepSpacing; karras: boolean; finalSigmas: boolean; sigmaRange: boolean }): SigmaScheduleConfig {
  return {
    timestepSpacing: r.oneOf<TimestepSpacing>('timestep_spacing', TIMESTEP_SPACINGS, opts.spacingDefault),
    stepsOffset: r.int('steps_offset', 0),
    useKarrasSigmas: opts.karras ? r.bool('use_karras_sigmas', false) : false,
    finalSigmasType: opts.finalSigmas ? r.oneOf<FinalSigmasType>('final_sigmas_type', ['zero', 'sigma_min'], 'zero') : 'zero',
    sigmaMin: opts.sigmaRange ? r.numOrNull('sigma_min') : null,
    sigmaMax: opts.sigmaRange ? r.numOrNull('sigma_max') : null,
  };
}

/** The final sigma appended after the N spaced ones. */
function sigmaLast(ts: TrainingSchedule, type: FinalSigmasType): number {
  if (type === 'zero') return 0;
  const a = ts.alphasCumprod[0]!;
  return f(Math.sqrt(f(f(1 - a) / a)));
}

export interface SigmaSchedule {
  /** What the UNet receives. */
  readonly timesteps: number[];
  /** N + 1 float32 sigmas, the last one final (0 or sigma_min). */
  readonly sigmas: Float32Array;
}

/** Euler / Euler ancestral / LMS / Heun `set_timesteps`. */
export function kDiffusionSchedule(ts: TrainingSchedule, c: SigmaScheduleConfig, n: number): SigmaSchedule {
  const T = ts.numTrainTimesteps;
  let timesteps: number[];
  switch (c.timestepSpacing) {
    case 'linspace': // np.linspace(0, T - 1, N, dtype=float32)[::-1]
      timesteps = npLinspace(0, T - 1, n).map(f).reverse();
      break;
    case 'leading': { // (arange(N) * (T // N)).round()[::-1].astype(float32) + steps_offset
      const ratio = Math.floor(T / n);
      timesteps = Array.from({ length: n }, (_, i) => f(f((n - 1 - i) * ratio) + c.stepsOffset));
      break;
    }
    case 'trailing': // arange(T, 0, -T / N).round().astype(float32) - 1
      timesteps = npArange(T, 0, -T / n).map((v) => f(f(roundHalfEven(v)) - 1));
      break;
  }
  const table = trainingSigmas(ts.alphasCumprod);
  let sigmas = npInterpIndex(timesteps, table);
  if (c.useKarrasSigmas) {
    // the range comes from the already spaced sigmas (float64, not rounded) unless the config sets it
    sigmas = karrasSigmas(c.sigmaMin ?? sigmas[sigmas.length - 1]!, c.sigmaMax ?? sigmas[0]!, n);
    const logSigmas = logF32(table);
    timesteps = sigmas.map((s) => f(sigmaToT(s, logSigmas)));
  }
  return { timesteps, sigmas: Float32Array.from([...sigmas, sigmaLast(ts, c.finalSigmasType)]) };
}

/** DPM-Solver multistep / UniPC `set_timesteps` (int timesteps). `lambdaMinClipped` (DPM-Solver) caps the first timestep. */
export function dpmSolverSchedule(ts: TrainingSchedule, c: SigmaScheduleConfig, n: number, opts: { lambdaMinClipped?: number; karrasLastIsSigmaMin?: boolean } = {}): SigmaSchedule {
  const lambdaMinClipped = opts.lambdaMinClipped ?? Number.NEGATIVE_INFINITY;
  const T = ts.numTrainTimesteps;
  const last = T - clippedIndex(ts.alphasCumprod, lambdaMinClipped);
  let timesteps: number[];
  switch (c.timestepSpacing) {
    case 'linspace': // np.linspace(0, last - 1, N + 1).round()[::-1][:-1]
      timesteps = npLinspace(0, last - 1, n + 1).map(roundHalfEven).reverse().slice(0, n);
      break;
    case 'leading': { // (arange(N + 1) * (last // (N + 1))).round()[::-1][:-1] + steps_offset
      const ratio = Math.floor(last / (n + 1));
      timesteps = Array.from({ length: n }, (_, i) => (n - i) * ratio + c.stepsOffset);
      break;
    }
    case 'trailing': // arange(last, 0, -T / N).round() - 1
      timesteps = npArange(last, 0, -T / n).map((v) => roundHalfEven(v) - 1);
      break;
  }
  const table = trainingSigmas(ts.alphasCumprod);
  let sigmas: number[];
  if (c.useKarrasSigmas) {
    // the full training range (t = 0 .. T - 1); timesteps rounded from the log-sigma interpolation
    const logSigmas = logF32(table);
    sigmas = karrasSigmas(table[0]!, table[T - 1]!, n);
    timesteps = sigmas.map((s) => roundHalfEven(sigmaToT(s, logSigmas)));
    // UniPC's Karras branch ends on its own smallest sigma for final_sigmas_type sigma_min
    if (opts.karrasLastIsSigmaMin && c.finalSigmasType === 'sigma_min') return { timesteps, sigmas: Float32Array.from([...sigmas, sigmas[n - 1]!]) };
  } else sigmas = npInterpIndex(timesteps, table);
  return { timesteps, sigmas: Float32Array.from([...sigmas, sigmaLast(ts, c.finalSigmasType)]) };
}

/** `searchsorted(flip(lambda_t), lambda_min_clipped)`: how many of the largest timesteps are clipped. */
function clippedIndex(alphasCumprod: Float32Array, lambdaMin: number): number {
  if (lambdaMin === Number.NEGATIVE_INFINITY) return 0;
  const T = alphasCumprod.length;
  const v = f(lambdaMin);
  let count = 0;
  for (let i = T - 1; i >= 0; i--) {
    const a = alphasCumprod[i]!;
    const lambda = f(f(Math.log(f(Math.sqrt(a)))) - f(Math.log(f(Math.sqrt(f(1 - a))))));
    if (lambda < v) count++;
    else break;
  }
  return count;
}

/** Rejects configurations whose result would be meaningless before any step runs. */
export function checkSchedule(s: SigmaSchedule, source: string): void {
  if (s.timesteps.some((t) => !Number.isFinite(t)) || s.sigmas.some((x) => !Number.isFinite(x))) {
    throw new FileFormatError(source, 'the scheduler config gives non-finite timesteps or sigmas');
  }
}
