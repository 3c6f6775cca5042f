/**
 * Reading a scheduler config the way diffusers' `Cls.from_config(config, **kwargs)` does: every key
 * the class knows is taken from the config (kwargs first), keys listed in `_use_default_values` are
 * dropped so the class's own defaults apply, everything else is ignored. Each scheduler passes its
 * own defaults. Also builds the training noise schedule (betas -> alphas_cumprod) shared by all.
 */
import { FileFormatError } from '../errors.js';
import { betasForAlphaBar, cumprodF32, oneMinus, rescaleZeroTerminalSnr, torchLinspaceF32 } from './betas.js';

export type BetaSchedule = 'linear' | 'scaled_linear' | 'squaredcos_cap_v2';
export type PredictionType = 'epsilon' | 'v_prediction' | 'sample';
export type TimestepSpacing = 'leading' | 'trailing' | 'linspace';
export const TIMESTEP_SPACINGS: readonly TimestepSpacing[] = ['leading', 'trailing', 'linspace'];

/** Typed, validated reads of a raw scheduler config; errors name the file, key, expected and actual value. */
export class SchedulerConfigReader {
  readonly raw: Record<string, unknown>;
  constructor(readonly source: string, raw: Record<string, unknown>) {
    const defaults = Array.isArray(raw._use_default_values) ? (raw._use_default_values as unknown[]) : [];
    this.raw = Object.fromEntries(Object.entries(raw).filter(([k]) => !defaults.includes(k) && k !== '_use_default_values'));
  }

  private bad(key: string, expected: string): never {
    const v = this.raw[key];
    throw new FileFormatError(this.source, `expected ${expected}, got ${typeof v === 'number' ? String(v) : JSON.stringify(v)}`, key);
  }

  /** A number (null or missing: the default). Non-finite values (Python's -Infinity) only where `allowNonFinite`. */
  num(key: string, dflt: number, opts: { min?: number; allowNonFinite?: boolean } = {}): number {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || Number.isNaN(v) || (!opts.allowNonFinite && !Number.isFinite(v))) this.bad(key, opts.allowNonFinite ? 'a number' : 'a finite number');
    if (opts.min !== undefined && (v as number) < opts.min) this.bad(key, `a number >= ${opts.min}`);
    return v as number;
  }

  /** A number or null (diffusers' Optional[float]). */
  numOrNull(key: string): number | null {
    const v = this.raw[key];
    return v === undefined || v === null ? null : this.num(key, 0);
  }

  int(key: string, dflt: number, min = Number.MIN_SAFE_INTEGER): number {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.bad(key, min > Number.MIN_SAFE_INTEGER ? `an integer >= ${min}` : 'an integer');
    return v as number;
  }

  bool(key: string, dflt: boolean): boolean {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'boolean') this.bad(key, 'true or false');
    return v as boolean;
  }

  oneOf<T extends string>(key: string, allowed: readonly T[], dflt: T): T {
    const v = this.raw[key];
    if (v === undefined || v === null) return dflt;
    if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) this.bad(key, `one of ${allowed.join(', ')}`);
    return v as T;
  }

  /** Options this implementation does not have: the key must hold its neutral value. */
  unsupported(key: string, neutral: unknown, why: string): void {
    const v = this.raw[key];
    if (v === undefined || v === null || v === neutral) return;
    throw new FileFormatError(this.source, `${why}; expected ${JSON.stringify(neutral)}, got ${JSON.stringify(v)}`, key);
  }
}

/** The training noise schedule every scheduler starts from. */
export interface TrainingSchedule {
  readonly numTrainTimesteps: number;
  readonly betas: Float32Array;
  readonly alphasCumprod: Float32Array;
}

export interface TrainingDefaults {
  betaStart: number;
  betaEnd: number;
  betaSchedule: BetaSchedule;
  /** Whether the class has `rescale_betas_zero_snr`, and whether it then sets alphas_cumprod[-1] = 2^-24 (k-diffusion-style classes). */
  rescale?: 'plain' | 'with-eps' | 'none';
}

/** betas -> alphas_cumprod in float32 exactly as diffusers' constructors (torch on the CPU). */
export function trainingSchedule(r: SchedulerConfigReader, d: TrainingDefaults): TrainingSchedule {
  const T = r.int('num_train_timesteps', 1000, 1);
  const schedule = r.oneOf<BetaSchedule>('beta_schedule', ['linear', 'scaled_linear', 'squaredcos_cap_v2'], d.betaSchedule);
  const betaStart = r.num('beta_start', d.betaStart), betaEnd = r.num('beta_end', d.betaEnd);
  let betas: Float32Array;
  const tb = r.raw.trained_betas;
  if (tb !== undefined && tb !== null) {
    if (!Array.isArray(tb) || !tb.every((v) => typeof v === 'number' && v >= 0 && v < 1)) {
      throw new FileFormatError(r.source, `expected null or a list of numbers in [0, 1), got ${JSON.stringify(tb).slice(0, 40)}`, 'trained_betas');
    }
    if (tb.length !== T) throw new FileFormatError(r.source, `expected ${T} betas (num_train_timesteps), got ${tb.length}`, 'trained_betas');
    betas = Float32Array.from(tb as number[]);
  } else if (schedule === 'linear') betas = torchLinspaceF32(betaStart, betaEnd, T);
  else if (schedule === 'scaled_linear') {
    betas = torchLinspaceF32(betaStart ** 0.5, betaEnd ** 0.5, T);
    for (let i = 0; i < T; i++) betas[i] = betas[i]! * betas[i]!;
  } else betas = betasForAlphaBar(T);
  const rescale = (d.rescale ?? 'none') !== 'none' && r.bool('rescale_betas_zero_snr', false);
  if (rescale) betas = rescaleZeroTerminalSnr(betas);
  const alphasCumprod = cumprodF32(oneMinus(betas));
  // Close to 0 without being 0, so that the first sigma is not infinite (diffusers' k-diffusion-style classes).
  if (rescale && d.rescale === 'with-eps') alphasCumprod[T - 1] = 2 ** -24;
  return { numTrainTimesteps: T, betas, alphasCumprod };
}
