/**
 * `benchmark`: a grid of methods x settings over a dataset folder, K images per reference, the papers'
 * metrics, CSV / Markdown tables and an HTML report. Resumable: Ctrl-C (or a crash) loses at most the
 * unit in progress; the same command again continues.
 */
import { Option, type Command } from 'commander';
import cliProgress from 'cli-progress';
import { InputError } from '../../errors.js';
import { configureEngine } from '../../graph/session.js';
import { expandGrid, globalSets, parseAssignment, readGridFile, type GridSpec } from '../../benchmark/grid.js';
import { DEFAULT_NEGATIVE_PROMPT, DEFAULT_PROMPT_SUFFIX, METRIC_NAMES, runBenchmark, type BenchmarkProgress, type MetricName } from '../../benchmark/run.js';
import { openModel } from '../model.js';
import type { GlobalOptions } from '../main.js';
import { choice, float, int } from '../parse.js';

interface BenchmarkFlags {
  model?: string;
  data: string;
  out: string;
  grid?: string;
  methods?: string;
  sweep?: string[];
  set?: string[];
  sweepMode?: 'product' | 'each';
  steps?: number;
  guidance?: number;
  numImages?: number;
  width?: number;
  height?: number;
  seed?: number;
  negativePrompt?: string;
  promptSuffix?: string;
  task?: 'variation' | 'cross-prompt';
  limit?: number;
  metrics?: string;
  clipModel?: string;
  dinoModel?: string;
  dinoHeads?: number;
  lpipsModel?: string;
  fidModel?: string;
  kidSubsets?: number;
  kidSubsetSize?: number;
  kidSeed?: number;
  isSplits?: number;
  isSeed?: number;
  cacheDir?: string;
  reportOnly?: boolean;
  reportRows?: number;
  json?: boolean;
}

const collect = (v: string, prev: string[] = []): string[] => [...prev, v];

/** The grid from --grid FILE, then --methods / --set / --sweep / --sweep-mode on top. */
export function gridFromFlags(o: Pick<BenchmarkFlags, 'grid' | 'methods' | 'sweep' | 'set' | 'sweepMode'>): GridSpec {
  const spec: GridSpec = o.grid ? readGridFile(o.grid) : {};
  if (o.methods) spec.methods = o.methods.split(',').map((m) => m.trim()).filter(Boolean);
  for (const s of o.set ?? []) {
    const [k, vs] = parseAssignment(s, '--set');
    if (vs.length !== 1) throw new InputError(`--set ${s}: one value (use --sweep for several)`);
    spec.set = { ...spec.set, [k]: vs[0] };
  }
  for (const s of o.sweep ?? []) { const [k, vs] = parseAssignment(s, '--sweep'); spec.sweep = { ...spec.sweep, [k]: vs }; }
  if (o.sweepMode) spec.sweepMode = o.sweepMode;
  return spec;
}

function metricsFrom(o: BenchmarkFlags): MetricName[] | undefined {
  // Default (undefined): the library's, every metric whose network is given (KID and IS by name only).
  if (o.metrics === undefined) return undefined;
  if (o.metrics.trim() === 'none') return [];
  return o.metrics.split(',').map((m) => choice('--metrics', METRIC_NAMES)(m.trim()));
}

export function registerBenchmarkCommand(program: Command, globals: () => GlobalOptions): void {
  program.command('benchmark')
    .description('run a grid of methods x settings over a dataset (K images per reference; resumable), score them with the papers\' metrics and write metrics.csv, metrics.md and report.html')
    .option('--model <path>', 'checkpoint (diffusers folder or single file); not needed with --report-only')
    .requiredOption('--data <dir|file>', 'dataset: a folder with a .jsonl of {"image", "caption"} lines, or COCO\'s layout (annotations/captions_val2017.json + val2017/)')
    .requiredOption('--out <dir>', 'output folder; rerunning into it continues where it stopped')
    .option('--grid <file>', 'grid as JSON or YAML: {methods, set, sweep, sweepMode, configs}')
    .option('--methods <list>', 'comma-separated methods (default indetail-ip,kv-concat)')
    .option('--sweep <name=v1,v2,...>', 'sweep a parameter (lambdaP, lambdaG, stratifiedSteps, guidanceMode, tAlign, tEarly, startStep, startLayer, scoreShift, steps, guidance); METHOD.name scopes it; repeatable', collect)
    .option('--set <name=value>', 'fix a parameter for every method that reads it (METHOD.name: one method); repeatable', collect)
    .addOption(new Option('--sweep-mode <mode>', 'product: every combination of the sweeps; each: one parameter at a time').choices(['product', 'each']))
    .option('--steps <n>', 'denoising (and inversion) steps (default 50)', int('--steps', 1, 1000))
    .option('--guidance <g>', 'classifier-free guidance scale (default 7.5)', float('--guidance', 0))
    .option('--num-images <k>', 'images per reference (default 4, as InDetail-IP\'s evaluation)', int('--num-images', 1, 64))
    .option('--width <px>', 'image width (default: the model\'s size); references are resized to it', int('--width', 8))
    .option('--height <px>', 'image height (default: the model\'s size)', int('--height', 8))
    .option('--seed <s>', 'seed of the first reference; reference i uses seed + i (default 82)', int('--seed', 0, Number.MAX_SAFE_INTEGER - 1e9))
    .option('--negative-prompt <text>', `negative prompt (default "${DEFAULT_NEGATIVE_PROMPT}")`)
    .option('--prompt-suffix <text>', `appended to each caption (default "${DEFAULT_PROMPT_SUFFIX}")`)
    .addOption(new Option('--task <task>', 'variation (invert with the prompt) or cross-prompt (invert with "")').choices(['variation', 'cross-prompt']))
    .option('--limit <n>', 'only the first n references (smoke runs)', int('--limit', 1))
    .option('--metrics <list>', `metrics: ${METRIC_NAMES.join(', ')} or none (default: those whose network is given; kid and is use --fid-model and are asked for by name)`)
    .option('--clip-model <dir>', 'CLIP-I / CLIP-T: a transformers CLIPModel folder (openai/clip-vit-large-patch14)')
    .option('--dino-model <path>', 'DINO / DINO structure: a transformers ViTModel folder or dino_vitbase16_pretrain.pth')
    .option('--dino-heads <n>', 'attention heads of an official DINO .pth (default hidden/64)', int('--dino-heads', 1, 1024))
    .option('--lpips-model <dir>', 'LPIPS: folder with AlexNet features.* and the alex.pth heads')
    .option('--fid-model <path>', 'FID, KID, IS: pt_inception-2015-12-05-6726825d.pth (or a folder holding it)')
    .option('--kid-subsets <n>', 'KID subsets (default 100, as torchmetrics)', int('--kid-subsets', 1))
    .option('--kid-subset-size <n>', 'KID rows per subset (default 1000, as torchmetrics; at most the images of a set)', int('--kid-subset-size', 2))
    .option('--kid-seed <n>', 'torch.manual_seed before the KID subsets are drawn (default 123)', int('--kid-seed', 0))
    .option('--is-splits <n>', 'Inception Score splits (default 10, as torchmetrics)', int('--is-splits', 1))
    .option('--is-seed <n>', 'torch.manual_seed before the Inception Score shuffle (default 123)', int('--is-seed', 0))
    .option('--cache-dir <dir>', 'metric feature cache (default OUT/feature-cache)')
    .option('--report-only', 'do not generate: score and report what the folder holds')
    .option('--report-rows <n>', 'references shown in report.html (default 50)', int('--report-rows', 0))
    .option('--json', 'print a JSON summary as the last line')
    .action(async (o: BenchmarkFlags) => {
      const g = globals();
      if (!o.model && !o.reportOnly) throw new InputError('--model is required (or --report-only to score what exists)');
      const spec = gridFromFlags(o);
      const gridGiven = Boolean(o.grid || o.methods || o.sweep || o.set);
      // --report-only without a grid: every configuration the folder holds.
      const configs = o.reportOnly && !gridGiven ? undefined : expandGrid(spec, o.grid ? `--grid ${o.grid}` : '--sweep/--set');
      const params = globalSets(spec, o.grid ? `--grid ${o.grid}` : '--set');
      const { steps, guidance, ...rest } = params;
      // One process runs many units: keep each configuration's sessions (the runner releases them between configurations).
      configureEngine({ lowMemory: false });
      const controller = new AbortController();
      let interrupts = 0;
      const onSigint = (): void => {
        if (++interrupts > 1) process.exit(130);
        process.stderr.write('\nstopping: the unit in progress is dropped, finished ones are kept (Ctrl-C again to quit now)\n');
        controller.abort();
      };
      process.on('SIGINT', onSigint);
      // A MultiBar so warnings print above the bar without restarting its ETA.
      const bars = new cliProgress.MultiBar({
        format: '{phase} {bar} {percentage}% | {units}/{unitsTotal} | {duration_formatted} elapsed | eta {eta_formatted} | {detail}',
        stream: process.stderr, hideCursor: true, noTTYOutput: true, notTTYSchedule: 5000, etaBuffer: 200, fps: 2,
      }, cliProgress.Presets.shades_classic);
      let bar: cliProgress.SingleBar | undefined, phase = '';
      const onProgress = (e: BenchmarkProgress): void => {
        if (g.quiet || o.json) return;
        const payload = { phase: e.phase.padEnd(9), units: e.units, unitsTotal: e.unitsTotal, detail: e.detail ?? '' };
        if (e.phase !== phase) {
          bar?.stop();
          phase = e.phase;
          bar = bars.create(e.total, 0, payload);
        }
        bar?.update(e.done, payload);
      };
      try {
        const r = await runBenchmark({
          model: o.model ?? '', openModel: (p) => openModel(p, g), data: o.data, out: o.out, ...(configs ? { configs } : {}),
          settings: {
            ...(o.steps !== undefined || steps !== undefined ? { steps: o.steps ?? (steps as number) } : {}),
            ...(o.guidance !== undefined || guidance !== undefined ? { guidance: o.guidance ?? (guidance as number) } : {}),
            ...(o.numImages !== undefined ? { numImages: o.numImages } : {}), ...(o.width !== undefined ? { width: o.width } : {}),
            ...(o.height !== undefined ? { height: o.height } : {}), ...(o.seed !== undefined ? { seed: o.seed } : {}),
            ...(o.negativePrompt !== undefined ? { negativePrompt: o.negativePrompt } : {}), ...(o.promptSuffix !== undefined ? { promptSuffix: o.promptSuffix } : {}),
            ...(o.task ? { task: o.task } : {}), params: rest,
          },
          ...(o.limit !== undefined ? { limit: o.limit } : {}), ...(metricsFrom(o) ? { metrics: metricsFrom(o)! } : {}),
          networks: { clip: o.clipModel, dino: o.dinoModel, dinoHeads: o.dinoHeads, lpips: o.lpipsModel, fid: o.fidModel },
          ...(o.kidSubsets !== undefined || o.kidSubsetSize !== undefined || o.kidSeed !== undefined ? { kid: { subsets: o.kidSubsets, subsetSize: o.kidSubsetSize, seed: o.kidSeed } } : {}),
          ...(o.isSplits !== undefined || o.isSeed !== undefined ? { inceptionScore: { splits: o.isSplits, seed: o.isSeed } } : {}),
          ...(o.cacheDir ? { cacheDir: o.cacheDir } : {}), generate: !o.reportOnly, ...(o.reportRows !== undefined ? { reportRows: o.reportRows } : {}),
          signal: controller.signal, onProgress,
          onWarning: (m) => { if (g.quiet) return; if (bar) bars.log(`warning: ${m}\n`); else process.stderr.write(`warning: ${m}\n`); },
        });
        if (bar) bars.stop();
        if (o.json) {
          process.stdout.write(`${JSON.stringify({ out: r.out, generated: r.generated, resumed: r.resumed, skipped: r.skipped, report: r.files.html, csv: r.files.csv, markdown: r.files.markdown, configs: r.configs.map((c) => ({ id: c.config.id, references: c.references, images: c.images, metrics: c.metrics, fid: c.fid?.fid ?? null, ...(c.kid ? { kid_mean: c.kid.mean, kid_std: c.kid.std } : {}), ...(c.inceptionScore ? { is_mean: c.inceptionScore.mean, is_std: c.inceptionScore.std } : {}) })) })}\n`);
        } else {
          if (!g.quiet) for (const s of r.skipped) process.stderr.write(`skipped ${s.file}: ${s.reason}\n`);
          process.stdout.write(`${r.generated} generated, ${r.resumed} already done; report: ${r.files.html}\n`);
        }
      } catch (e) {
        if (bar) bars.stop();
        if (controller.signal.aborted) {
          process.stderr.write(`interrupted: finished units are kept in ${o.out}; rerun the same command to continue\n`);
          process.exit(130);
        }
        throw e;
      } finally {
        process.off('SIGINT', onSigint);
      }
    });
}
