/**
 * `npm run bench`: full-size Stable Diffusion 1.5 on this machine, with random weights (no download).
 *
 * Measures (each in a fresh child process, so peak RSS is per model):
 * - matmul_ceiling: one onnxruntime MatMul 4096x4096x4096 fp32 (B a constant, as model weights are);
 * - unet_step:      one UNet call at batch 2 on [2, 4, 64, 64] latents = one CFG step at 512x512;
 * - vae_decode:     one VAE decode of a [1, 4, 64, 64] latent;
 * - text_encode:    one CLIP ViT-L/14 text encoding of 2 prompts (77 tokens);
 * - pipeline_t2i:   the whole text-to-image pipeline (text encoder, 2 DDIM steps with CFG, VAE decode) on a
 *                   Checkpoint of random weights in low-memory mode, as the CLI runs it: wall time, phases,
 *                   peak RSS against the fp32 weights of UNet + VAE + text encoder (`ratio`, target <= 1.3);
 * - vary_step_ratio: one denoising step of `vary` (InDetail-IP, 1 image, CFG: 3 UNet rows [uncond gen,
 *                   cond ref, cond gen]) against one plain CFG step (2 rows): `ratio` = vary / plain
 *                   (target <= 1.55), with Stratified-Attention weights and with concatenation weights
 *                   (one graph, the weights are inputs);
 * - controlnet_step_ratio: one CFG step (2 rows) with an SD 1.5 ControlNet fused into the UNet graph
 *                   against the plain step: `ratio` = controlnet / plain;
 * - taesd_decode_ratio: one tiny-VAE (TAESD, 64 channels, 4 stages) decode of a [1, 4, 64, 64] latent against
 *                   the full SD 1.5 VAE decode: `ratio` = TAESD / full VAE (the cost of --vae-tiny / previews);
 * - pipeline_t2i_disk: pipeline_t2i from a real diffusers folder of F32 .safetensors (random weights streamed
 *                   to a temp folder first, write_s, not measured): openCheckpoint + textToImage in a fresh child,
 *                   F32 weights read by ORT from the files; build_s = UNet build; folder deleted afterwards;
 * - pipeline_t2i_f16: the same from a folder of F16 .safetensors (as most published checkpoints), no cache folder:
 *                   `ratio` = peak RSS / the float32 bytes of the weights (target <= 1.3);
 * - pno_iteration:  one PNO loss + gradient (SD 1.5 UNet + VAE, random weights; tiny CLIP tower), one line per
 *                   mode (checkpointing true / false) at latents min(--size, 32), plus checkpointed at 64 when
 *                   --size is 64 (killed, and reported as an error line, if its RSS passes 20 GiB);
 * - tiny_sd15_t2i, tiny_sd21_t2i: the tiny test models end to end (4 DDIM steps, 64x64, CFG), a sanity line.
 *
 * In the two *_ratio measures both graphs live in one process and their timed calls alternate (so load
 * from other work on the machine hits both alike); their peak RSS holds both sessions.
 *
 * Per measure: build_s = graph build + ORT session creation (the first `compile`), not counting the
 * generation of random weights (`weights_s`, which stands in for reading a checkpoint); first_call_s;
 * then `--runs` timed calls: median_s, min_s; gflops from an analytic count of 2*MACs of every
 * Conv / Gemm / MatMul in the built graph; peak_rss_mib = the child's maxRSS.
 *
 * Options: --json (one JSON object per line), --size N (latent size, default 64 = 512 px),
 * --only a,b (measures), --runs N, --threads N (ORT intra-op threads), --ort key=value (repeatable:
 * create sessions with extra ORT session options instead of the engine's defaults, e.g.
 * `--ort session.disable_prepacking=1 --ort enableMemPattern=false`; for investigations), --ort-from-files
 * (investigation: sessions read their weights from files and no JS copy is alive while ORT builds them).
 *
 * Layout: this file is the runner (options, one child process per measure, the report); bench/harness.ts the
 * shared harness (timing, RSS, FLOP count, ratio arms, child processes); bench/measures/<name>.ts one file per
 * measure, listed in bench/measures/index.ts; bench/sd15.ts the full-size model configs and graphs.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import ort from 'onnxruntime-node';
import { configureEngine, type Device } from '../src/graph/session.js';
import { fmtGiB, fmtS, patchSessionCreate, round, spawnMeasure, verdict, type Job, type Measure, type Options, type Result } from './harness.js';
import { MEASURES as ALL } from './measures/index.js';

const BY_NAME = new Map<string, Measure>(ALL.map((m) => [m.name, m]));
const MEASURES: readonly string[] = ALL.map((m) => m.name);

const YARDSTICK_UNET_RSS_GIB = 5.9;
const YARDSTICK_UNET_GFLOPS = 88;

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: npm run bench -- [--json] [--size N] [--only ${MEASURES.join(',')}] [--runs N] [--threads N] [--ort key=value ...]
  --size N      latent size (default 64 = 512x512 px; use 16 or 32 for a quick run); a multiple of 8
  --only a,b    run only these measures
  --runs N      timed calls per measure after the first (default: 3, text_encode 10, matmul_ceiling 5;
                the *_ratio measures: N calls of each graph, alternating; pipeline_t2i: one cold run)
  --steps N     DDIM steps of pipeline_t2i (default 2)
  --threads N   ORT intra-op threads (default: ORT's choice, all cores)
  --ort k=v     extra ORT session option for an investigation (enableMemPattern=false,
                enableCpuMemArena=false, graphOptimizationLevel=extended, session.disable_prepacking=1, ...)
  --ort-from-files  investigation: sessions read their weights from files (temporary folder) and the JS
                copies are freed before the session is built (the peak of an engine that kept none)
  --json        one JSON object per line`;

function parseOptions(argv: string[]): Options {
  const { values } = parseArgs({
    args: argv,
    options: {
      json: { type: 'boolean', default: false },
      size: { type: 'string', default: '64' },
      only: { type: 'string', multiple: true },
      runs: { type: 'string' },
      steps: { type: 'string', default: '2' },
      threads: { type: 'string' },
      ort: { type: 'string', multiple: true },
      'ort-from-files': { type: 'boolean', default: false },
      child: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  });
  if (values.help) { console.log(USAGE); process.exit(0); }
  const int = (name: string, v: string | undefined, min: number): number | undefined => {
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isInteger(n) || n < min) fail(`--${name} must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return n;
  };
  const size = int('size', values.size, 8)!;
  if (size % 8 !== 0) fail(`--size must be a multiple of 8 (the UNet downsamples three times), got ${size}`);
  const only = (values.only ?? []).flatMap((s) => s.split(',')).map((s) => s.trim()).filter(Boolean);
  for (const m of only) if (!MEASURES.includes(m)) fail(`unknown measure ${JSON.stringify(m)} (expected one of ${MEASURES.join(', ')})`);
  for (const kv of values.ort ?? []) if (!/^[A-Za-z_.]+=.+$/.test(kv)) fail(`--ort expects key=value, got ${JSON.stringify(kv)}`);
  return {
    json: values.json!, size, only: only.length ? only : [...MEASURES],
    runs: int('runs', values.runs, 1), steps: int('steps', values.steps, 1)!, threads: int('threads', values.threads, 1), ort: values.ort ?? [], ortFromFiles: values['ort-from-files']!, child: values.child,
  };
}

function fail(message: string): never {
  console.error(`bench: ${message}`);
  console.error(USAGE);
  process.exit(2);
}

async function runChild(measure: string, opts: Options): Promise<void> {
  patchSessionCreate(opts);
  if (opts.threads) configureEngine({ threads: opts.threads });
  // Any measure on a GPU (scripts/gpu-check.sh): VISPROMPT_BENCH_DEVICE=webgpu|cuda; the line records it.
  const device = process.env.VISPROMPT_BENCH_DEVICE as Device | undefined;
  if (device) configureEngine({ device });
  const r = await BY_NAME.get(measure)!.run(opts);
  process.stdout.write(`${JSON.stringify(device ? { device, ...r } : r)}\n`);
}

// ---------------------------------------------------------------------------------------------
// The parent: one child per measure, then the report.

function annotate(r: Result, ceiling: Result | undefined): Result {
  const y = BY_NAME.get(r.measure)?.yardstick;
  const out: Result = { ...r };
  if (y && (r.size === undefined || r.size === 64)) {
    out.yardstick_s = y.seconds;
    out.ratio = round(r.median_s / y.seconds);
    if (y.target !== undefined) out.target_ratio = y.target;
  }
  // The ceiling is the matmul's best call (a peak rate; its median suffers most from other work on the machine).
  const peak = ceiling?.gflops_at_min ?? ceiling?.gflops;
  if (peak && r.gflops !== null && r.measure !== 'matmul_ceiling') out.ceiling_fraction = round(r.gflops / peak);
  return out;
}

function describe(r: Result): string {
  const own = BY_NAME.get(r.measure)?.describe;
  if (own) return own(r);
  if (r.baseline_median_s !== undefined) {
    const parts = [`${r.measure.padEnd(15)} ${fmtS(r.median_s)} (${r.rows} rows) vs plain step ${fmtS(r.baseline_median_s)} (${r.baseline_rows} rows) = ${r.ratio!.toFixed(2)}x${verdict(r.ratio!, r.target_ratio)}`];
    if (r.concat_median_s !== undefined) parts.push(`; concatenation weights ${fmtS(r.concat_median_s)} = ${r.concat_ratio!.toFixed(2)}x (${r.variant_graphs_built === 1 ? 'same graph' : `${r.variant_graphs_built} graphs built!`})`);
    parts.push(`; ${r.gflops!.toFixed(0)} vs ${r.baseline_gflops!.toFixed(0)} GFLOP/s; build ${fmtS(r.build_s!)} + first call ${fmtS(r.first_call_s)}; peak RSS ${fmtGiB(r.peak_rss_mib)} (both sessions)`);
    if (r.finite === false) parts.push(' [output not finite!]');
    return parts.join('');
  }
  const parts = [`${r.measure.padEnd(15)} ${fmtS(r.median_s)}`];
  if (r.yardstick_s !== undefined) {
    const verdict = r.target_ratio !== undefined ? (r.ratio! <= r.target_ratio ? `, target <= ${r.target_ratio}x met` : `, target <= ${r.target_ratio}x MISSED`) : '';
    parts.push(` (${r.ratio!.toFixed(2)}x PyTorch yardstick ${r.yardstick_s} s${verdict})`);
  }
  if (r.gflops !== null) {
    parts.push(`, ${r.gflops.toFixed(0)} GFLOP/s`);
    if (r.ceiling_fraction !== undefined) parts.push(` = ${r.ceiling_fraction.toFixed(2)} of the matmul ceiling`);
    if (r.measure === 'unet_step' && r.size === 64) parts.push(` (PyTorch ${YARDSTICK_UNET_GFLOPS})`);
  }
  parts.push(`; peak RSS ${fmtGiB(r.peak_rss_mib)}`);
  if (r.weight_mib) parts.push(` = ${(r.peak_rss_mib / r.weight_mib).toFixed(2)}x its fp32 weights (${fmtGiB(r.weight_mib)})`);
  if (r.measure === 'unet_step' && r.size === 64) parts.push(` (PyTorch ${YARDSTICK_UNET_RSS_GIB} GiB)`);
  if (r.build_s !== null) parts.push(`; build ${fmtS(r.build_s)} + first call ${fmtS(r.first_call_s)} = ${fmtS(r.build_s + r.first_call_s)}`);
  else parts.push(`; cold run ${fmtS(r.first_call_s)}`);
  if (r.gflops_at_min) parts.push(`; best call ${fmtS(r.min_s)} = ${r.gflops_at_min.toFixed(0)} GFLOP/s`);
  if (r.finite === false) parts.push(' [output not finite!]');
  const threads = r.threads === 'default' ? os.availableParallelism() : r.threads;
  if (r.cpu_util !== undefined && r.cpu_util < 0.85 * threads) parts.push(` [busy machine? ${r.cpu_util.toFixed(2)} CPU-s per s over ${threads} threads, load ${r.loadavg_1m}]`);
  return parts.join('');
}

function table(results: readonly Result[]): string {
  const head = ['measure', 'median', 'min', 'GFLOP/s', 'of ceiling', 'peak RSS', 'build', 'first call', 'ratio'];
  const rows = results.map((r) => [
    r.measure, fmtS(r.median_s), fmtS(r.min_s), r.gflops === null ? '-' : r.gflops.toFixed(0),
    r.ceiling_fraction === undefined ? '-' : r.ceiling_fraction.toFixed(2), fmtGiB(r.peak_rss_mib),
    r.build_s === null ? '-' : fmtS(r.build_s), fmtS(r.first_call_s), r.ratio === undefined ? '-' : `${r.ratio.toFixed(2)}x`,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}

/** The child processes of a measure: its own jobs, or one child. */
function jobsOf(m: string, opts: Options): Job[] {
  return BY_NAME.get(m)!.jobs?.(opts) ?? [{ measure: m, label: {}, run: (argv) => spawnMeasure(m, argv) }];
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opts = parseOptions(argv);
  if (opts.child) {
    await runChild(opts.child, opts);
    return;
  }
  const forwarded = argv.filter((a) => a !== '--json');
  const order = MEASURES.filter((m) => opts.only.includes(m));
  const results: Result[] = [];
  let ceiling: Result | undefined;
  let failed = false;
  if (!opts.json) {
    const threads = opts.threads ?? `ORT default (${os.availableParallelism()} cores)`;
    console.log(`visprompt bench: SD 1.5 fp32, random weights, onnxruntime-node ${ort.env.versions.common} cpu, intra-op threads ${threads}, latents ${opts.size}x${opts.size} (${opts.size * 8}x${opts.size * 8} px)${opts.ort.length ? `, ORT options ${opts.ort.join(' ')}` : ''}${opts.ortFromFiles ? ', weights handed to ORT as files' : ''}`);
  }
  for (const job of order.flatMap((m) => jobsOf(m, opts))) {
    const m = job.measure;
    let r: Result;
    try {
      r = await job.run(forwarded);
    } catch (e) {
      if (job.expectFailure) {
        console.error(`bench: ${(e as Error).message} (expected possible outcome, reported)`);
        const line = { measure: m, ...job.label, error: (e as Error).message };
        console.log(opts.json ? JSON.stringify(line) : `${m.padEnd(15)} ${JSON.stringify(job.label)}: ${line.error}`);
        continue;
      }
      failed = true;
      console.error(`bench: ${(e as Error).message}`);
      continue;
    }
    if (m === 'matmul_ceiling') ceiling = r;
    r = annotate(r, ceiling);
    results.push(r);
    if (opts.json) console.log(JSON.stringify(r));
    else console.log(describe(r));
  }
  if (!opts.json && results.length) {
    console.log('');
    console.log(table(results));
    console.log(`\nPyTorch CPU yardstick (same machine): UNet CFG step 18.2 s (88 GFLOP/s, peak RSS 5.9 GiB), VAE decode 14.7 s, CLIP text 0.74 s.`);
    console.log('GFLOP/s = 2*MACs of Conv/Gemm/MatMul/fused attention per median call; "of ceiling" = that over the matmul\'s best call.');
    console.log('ratio: unet_step, vae_decode = median / PyTorch; *_step_ratio = median / plain CFG step; pipeline_t2i = peak RSS / fp32 weights.');
    console.log('Targets: UNet step <= 0.6x (about 11 s, >= 0.7 of the matmul ceiling), VAE decode <= 1.0x, whole-pipeline peak RSS <= 1.3x the fp32 weights of UNet+VAE+text encoder, build + first call < 60 s, vary step <= 1.55x the generate step.');
  }
  if (failed) process.exitCode = 1;
}

main().catch((e: unknown) => {
  console.error(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`);
  process.exit(1);
});
