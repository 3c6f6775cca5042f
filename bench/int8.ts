/**
 * Shared by the *_int8 measures (issue 15): the int8 arm against the float32 arm of the same graph, timed
 * alternately; the relative error of one call; and the GEMM ceilings of both precisions measured in the
 * same process (a [n, n] x [n, n] float32 MatMul and DynamicQuantizeMatMul with int8 weights).
 */
import { usePrecision } from '../src/graph/quantize.js';
import type { Feed } from '../src/graph/session.js';
import { compileGraph, log, median, now, randomTensor, ratioResult, round, ShapeGraph, timeArms, type Arm, type Options, type Result, type TimedArm } from './harness.js';
import { WeightsView } from '../src/io/weights.js';
import { linear } from '../src/graph/nn.js';
import type { TensorSource } from '../src/io/weights.js';

/** A [n, n] weight as a one-layer "linear" source, so both precisions build it through nn.linear. */
function gemmSource(n: number): TensorSource {
  const w = randomTensor([n, n], 5, 1 / Math.sqrt(n));
  return { origin: 'ceiling', keys: () => ['attentions.0.to_q.weight'], has: (k) => k === 'attentions.0.to_q.weight', shape: () => [n, n], read: () => w };
}

/** GFLOP/s of the best of `runs` calls of a [n, n] x [n, n] product in float32 and in int8 (alternating). */
export async function gemmCeilings(n: number, runs: number, opts: Options): Promise<{ n: number; fp32: number; int8: number }> {
  const src = gemmSource(n);
  const feeds: Record<string, Feed> = { a: randomTensor([n, n], 4) };
  const build = (p: 'fp32' | 'int8') => {
    const g = usePrecision(new ShapeGraph(`ceiling_${p}`), p);
    g.output('c', linear(g.input('a', [n, n]), new WeightsView(src).pp('attentions.0.to_q'), n, n, false));
    return g;
  };
  const sessions = { int8: await compileGraph(`bench-ceiling-int8:${n}`, build('int8'), opts), fp32: await compileGraph(`bench-ceiling-fp32:${n}`, build('fp32'), opts) };
  const best = { int8: Infinity, fp32: Infinity };
  for (let i = 0; i <= runs; i++) {
    for (const p of ['int8', 'fp32'] as const) {
      const t = now();
      await sessions[p].run(feeds);
      if (i > 0) best[p] = Math.min(best[p], now() - t); // the first call is a warm-up
    }
  }
  const flops = 2 * n ** 3;
  log(`GEMM ceilings at ${n}^3: fp32 ${(flops / best.fp32 / 1e9).toFixed(0)} GFLOP/s, int8 ${(flops / best.int8 / 1e9).toFixed(0)} GFLOP/s`);
  await sessions.int8.release(); await sessions.fp32.release();
  return { n, fp32: round(flops / best.fp32 / 1e9), int8: round(flops / best.int8 / 1e9) };
}

/** ||a - b|| / ||b|| over every output of one more call of each arm with `feeds`. */
async function relError(int8: TimedArm, fp32: TimedArm, feeds: Record<string, Feed>): Promise<number> {
  const a = await int8.prepared.compiled.run(feeds), b = await fp32.prepared.compiled.run(feeds);
  let num = 0, den = 0;
  for (const [k, t] of Object.entries(b)) {
    const q = a[k]!.data;
    for (let i = 0; i < t.data.length; i++) { num += (q[i]! - t.data[i]!) ** 2; den += t.data[i]! ** 2; }
  }
  return Math.sqrt(num / den);
}

/**
 * Time `arms` = [int8, fp32] alternately; `ratio` = int8 median / fp32 median. Adds the relative error of one
 * call, the GEMM ceilings of both precisions and each arm's GFLOP/s as a fraction of its ceiling.
 */
export async function int8Ratio(measure: string, arms: [Arm, Arm], main: string, opts: Options, note: string, target?: number): Promise<Result> {
  const runs = opts.runs ?? 3;
  const timed = await timeArms(measure, arms, runs, opts);
  const [qa, fa] = timed.arms as [TimedArm, TimedArm];
  const rel = await relError(qa, fa, arms[0].feeds[main]!);
  const ceil = await gemmCeilings(Math.min(4096, 64 * opts.size), Math.max(2, runs), opts);
  const r = ratioResult(measure, timed, arms, main, runs, opts, { note }, target);
  const int8G = qa.prepared.flops / median(qa.times[main]!) / 1e9, fp32G = fa.prepared.flops / median(Object.values(fa.times)[0]!) / 1e9;
  return {
    ...r,
    rel_error: round(rel),
    ceiling_n: ceil.n,
    ceiling_fp32_gflops: ceil.fp32,
    ceiling_int8_gflops: ceil.int8,
    ceiling_ratio: round(ceil.fp32 / ceil.int8),
    int8_ceiling_fraction: round(int8G / ceil.int8),
    fp32_ceiling_fraction: round(fp32G / ceil.fp32),
  };
}

/** The human-readable line of an int8 measure. */
export function describeInt8(what: string) {
  return (r: Result): string => `${what}: int8 ${r.median_s} s vs float32 ${r.baseline_median_s} s, ratio ${r.ratio} (target <= ${r.target_ratio ?? '-'}), `
    + `relative error ${r.rel_error}; ${r.gflops} vs ${r.baseline_gflops} GFLOP/s, GEMM ceilings int8 ${r.ceiling_int8_gflops} / fp32 ${r.ceiling_fp32_gflops} GFLOP/s (fp32/int8 time ${r.ceiling_ratio})`;
}
