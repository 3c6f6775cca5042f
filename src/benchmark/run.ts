/**
 * `visprompt benchmark`: every configuration of a grid (methods x settings) on every reference of a
 * dataset, K images per reference, then the papers' metrics (src/eval/evaluate.ts) and a report.
 *
 * Resumable: one unit of work = one configuration on one reference (one `vary` call making K images).
 * Its PNGs and then its record file are written atomically (temporary name + rename), so a crash or
 * Ctrl-C loses at most the unit in progress and a rerun skips every unit whose record exists (and
 * still matches the reference and caption). Scores are stored per unit beside the record, keyed by
 * the metric networks, so a rerun only scores what is new.
 *
 * OUT/
 *   benchmark.json                 run-wide settings (a rerun must use the same) and the grid
 *   references/<id>.png            each reference as the model saw it (resized to W x H)
 *   images/<config>/<id>-<k>.png   the generated images (PNG `parameters` chunk as `vary` writes)
 *   runs/<config>/<id>.json        unit records (seed, prompt, seconds); <id>.scores.json: metrics
 *   metrics.csv, metrics.md, per-image.csv, results.json, report.html, plots/*.svg|png
 */
import fs from 'node:fs';
import path from 'node:path';
import { openCheckpoint, type Checkpoint } from '../components/checkpoint.js';
import { FileFormatError, InputError } from '../errors.js';
import { CLIPModel } from '../components/clip-model.js';
import { DinoViT } from '../eval/dino-vit.js';
import { evalClip, evalDino, evalLpips, inceptionFeatures, type Skipped } from '../eval/evaluate.js';
import { networkId } from '../eval/feature-cache.js';
import { FID_INPUT_SIZE, FIDInception, fidInceptionGraph } from '../eval/fid-inception.js';
import { featureStats, frechetDistance } from '../eval/frechet.js';
import { inceptionLogits, inceptionScore } from '../eval/inception-score.js';
import { kernelInceptionDistance } from '../eval/kid.js';
import { LPIPS } from '../eval/lpips.js';
import { Graph } from '../graph/ir.js';
import { encodePNG, readImageRGB, type RGBImage } from '../io/image.js';
import { createMethod, type MethodOptions } from '../methods/index.js';
import { TorchGenerator } from '../noise/torch-generator.js';
import { referenceAtSize } from '../pipelines/common.js';
import { vary } from '../pipelines/vary.js';
import { releaseSessions } from '../graph/session.js';
import { loadBenchmarkDataset, type BenchmarkEntry } from './dataset.js';
import { GRID_PARAMETERS, type GridConfig, type ParamValue } from './grid.js';
import { lockFolder, readJson, removeStaleTemporaries, writeFileAtomic, writeJsonAtomic } from './store.js';
import { writeReport, type ConfigResult, type ReportInput } from './report.js';
import { meanCI95 } from './stats.js';
import type { Precision } from '../graph/quantize.js';

export const METRIC_NAMES = ['clip', 'dino', 'lpips', 'fid', 'kid', 'is'] as const;
export type MetricName = (typeof METRIC_NAMES)[number];
/** The network flag of each metric: KID and the Inception Score use the FID Inception (--fid-model). */
export const NETWORK_OF: Readonly<Record<MetricName, 'clip' | 'dino' | 'lpips' | 'fid'>> = { clip: 'clip', dino: 'dino', lpips: 'lpips', fid: 'fid', kid: 'fid', is: 'fid' };
/** Metrics over a configuration's whole image set (one number per configuration, no per-image scores). */
const SET_METRICS: readonly MetricName[] = ['fid', 'kid', 'is'];
/** Per-image scores, by column name. */
export const SCORE_COLUMNS = ['clip_i', 'clip_t', 'dino', 'dino_structure', 'lpips'] as const;
export type ScoreColumn = (typeof SCORE_COLUMNS)[number];

/** Run-wide settings: a rerun into the same folder must give the same ones. */
export interface BenchmarkSettings {
  readonly steps: number;
  readonly guidance: number;
  readonly numImages: number;
  readonly width: number;
  readonly height: number;
  /** The seed of reference i is seed + i (torch generator, as `vary --seed S --noise torch`). */
  readonly seed: number;
  readonly negativePrompt: string;
  /** Appended to each caption to make the prompt (InDetail-IP's ", best quality, extremely detailed."). */
  readonly promptSuffix: string;
  /** variation: the reference is inverted with the prompt; cross-prompt: with "" (RIVAL's convention). */
  readonly task: 'variation' | 'cross-prompt';
  /** Unscoped `set` parameters for every method that reads them. */
  readonly params: Readonly<Record<string, ParamValue>>;
}

export interface MetricNetworks {
  readonly clip?: string;
  readonly dino?: string;
  readonly dinoHeads?: number;
  readonly lpips?: string;
  readonly fid?: string;
}

export interface BenchmarkProgress {
  readonly phase: 'generate' | 'score' | 'fid';
  /** Work done and total (generate: UNet rows; score, fid: units / configurations). */
  readonly done: number;
  readonly total: number;
  /** Units finished and to do in this phase. */
  readonly units: number;
  readonly unitsTotal: number;
  readonly detail?: string;
}

export interface BenchmarkOptions {
  /** A checkpoint path (opened with openCheckpoint unless `openModel` is given). */
  readonly model: string;
  readonly openModel?: (model: string) => Checkpoint;
  readonly data: string;
  readonly out: string;
  /** The grid; default (with `generate: false`): the configurations the folder's benchmark.json lists. */
  readonly configs?: readonly GridConfig[];
  /** Missing fields take the paper's defaults (50 steps, CFG 7.5, K = 4, seed 82, the model's size). */
  readonly settings?: Partial<BenchmarkSettings>;
  readonly limit?: number;
  readonly metrics?: readonly MetricName[];
  readonly networks?: MetricNetworks;
  /** Feature cache of the metric networks (default OUT/feature-cache). */
  readonly cacheDir?: string;
  /** KID (torchmetrics): subsets (default 100), rows per subset (default 1000), torch seed (default 123). */
  readonly kid?: { readonly subsets?: number; readonly subsetSize?: number; readonly seed?: number };
  /** Inception Score (torchmetrics): splits (default 10), torch seed of the shuffle (default 123). */
  readonly inceptionScore?: { readonly splits?: number; readonly seed?: number };
  /** false: only score and report what exists (no model is opened). */
  readonly generate?: boolean;
  /** Rows of the HTML gallery (default 50 references). */
  readonly reportRows?: number;
  readonly signal?: AbortSignal;
  readonly onProgress?: (e: BenchmarkProgress) => void;
  readonly onWarning?: (message: string) => void;
  /** After each generated unit (tests interrupt runs with it). */
  readonly onUnitDone?: (config: string, reference: string) => void;
}

export interface BenchmarkResult {
  readonly out: string;
  readonly generated: number;
  readonly resumed: number;
  readonly skipped: readonly Skipped[];
  readonly configs: readonly ConfigResult[];
  readonly files: { readonly csv: string; readonly markdown: string; readonly html: string; readonly json: string; readonly perImageCsv: string; readonly plots: readonly string[] };
}

interface UnitRecord {
  readonly config: string;
  readonly reference: string;
  readonly image: string;
  readonly caption: string;
  readonly prompt: string;
  readonly seed: number;
  readonly files: string[];
  readonly seconds: number;
  readonly rowsPerStep: number;
  readonly finished: string;
}

type Scores = { file: string } & Partial<Record<ScoreColumn, number>>;
interface ScoreRecord { readonly key: string; readonly perImage: Scores[]; readonly skipped: Skipped[] }

export const DEFAULT_PROMPT_SUFFIX = ', best quality, extremely detailed.';
export const DEFAULT_NEGATIVE_PROMPT = 'bad anatomy, bad hands, cropped, worst quality';

const rel = (out: string, p: string): string => path.relative(out, p).split(path.sep).join('/');

function methodOptions(cfg: GridConfig, settings: BenchmarkSettings): { steps: number; guidance: number; options: MethodOptions } {
  const merged: Record<string, ParamValue> = {};
  for (const [k, v] of Object.entries(settings.params)) {
    const p = GRID_PARAMETERS[k];
    if (p && (p.methods === 'all' || p.methods.includes(cfg.method))) merged[k] = v;
  }
  Object.assign(merged, cfg.params);
  const { steps, guidance, ...rest } = merged;
  return { steps: (steps as number | undefined) ?? settings.steps, guidance: (guidance as number | undefined) ?? settings.guidance, options: rest as MethodOptions };
}

function checkNetworks(metrics: readonly MetricName[], n: MetricNetworks): void {
  for (const m of metrics) {
    const p = n[NETWORK_OF[m]];
    if (!p) throw new InputError(`--metrics ${m}: give its network with --${NETWORK_OF[m]}-model`);
    if (!fs.existsSync(p)) throw new InputError(`--${NETWORK_OF[m]}-model ${p}: no such file or folder`);
  }
}

/**
 * Open every requested metric network before anything is generated: a network of the wrong
 * architecture is a one-line FileFormatError naming the key and the shapes now, not after hours of
 * generation. The FID Inception is checked by building its graph (shapes only, no weights read).
 */
function openNetworks(metrics: readonly MetricName[], n: MetricNetworks): { inception?: FIDInception; fc?: { weight: Float32Array; classes: number } } {
  if (metrics.includes('clip')) CLIPModel.open(n.clip!);
  if (metrics.includes('dino')) DinoViT.open(n.dino!, n.dinoHeads);
  if (metrics.includes('lpips')) LPIPS.open(n.lpips!);
  if (!metrics.some((m) => SET_METRICS.includes(m))) return {};
  const inception = FIDInception.open(n.fid!);
  const g = new Graph('fid_inception_check');
  const dims = fidInceptionGraph(g.input('x', [1, 3, FID_INPUT_SIZE, FID_INPUT_SIZE]), inception.weights).pool3.dim(1);
  if (!metrics.includes('is')) return { inception };
  // The Inception Score reads the 1008-class head (fc.weight [1008, 2048] in pt_inception-2015-12-05).
  if (!inception.weights.has('fc.weight')) throw new FileFormatError(inception.file, 'missing weight (the Inception Score needs the classifier head [1008, 2048])', 'fc.weight');
  const s = inception.weights.shape('fc.weight');
  if (s.length !== 2 || s[1] !== dims) throw new FileFormatError(inception.file, `weight has shape [${s.join(', ')}] but the Inception Score expects [classes, ${dims}] (pool3 features)`, 'fc.weight');
  return { inception, fc: { weight: inception.weights.get('fc.weight').data as Float32Array, classes: s[0]! } };
}

/** Check the settings against the folder's manifest (a rerun must match); write it when new. */
function manifest(out: string, o: BenchmarkOptions, settings: BenchmarkSettings, configs: readonly GridConfig[], precision: Precision): void {
  const file = path.join(out, 'benchmark.json');
  const old = readJson<{ model: string; precision?: Precision; settings: BenchmarkSettings; configs: GridConfig[] }>(file);
  const model = path.resolve(o.model);
  if (old) {
    if (old.model !== model) throw new InputError(`--model ${o.model}: ${out} was started with ${old.model} (use the same model or a new --out)`);
    // a folder made before the precision was recorded was made in float32
    if ((old.precision ?? 'fp32') !== precision) throw new InputError(`--precision ${precision}: ${out} was started with --precision ${old.precision ?? 'fp32'} (images of both would be mixed; rerun with the same precision or use a new --out)`);
    for (const k of Object.keys(settings) as (keyof BenchmarkSettings)[]) {
      if (JSON.stringify(old.settings[k]) !== JSON.stringify(settings[k])) throw new InputError(`${k} ${JSON.stringify(settings[k])}: ${out} was started with ${JSON.stringify(old.settings[k])} (rerun with the same settings to continue, or use a new --out)`);
    }
  }
  const known = new Map((old?.configs ?? []).map((c) => [c.id, c]));
  for (const c of configs) known.set(c.id, c);
  writeJsonAtomic(file, { model, precision, data: path.resolve(o.data), settings, configs: [...known.values()] });
}

/** Score one unit with every requested per-image metric (each from the eval library). */
async function scoreUnit(rec: UnitRecord, out: string, metrics: readonly MetricName[], n: MetricNetworks, cacheDir: string): Promise<ScoreRecord> {
  const files = rec.files.map((f) => path.join(out, f));
  const reference = path.join(out, 'references', `${rec.reference}.png`);
  const byFile = new Map<string, Scores>(files.map((f) => [f, { file: rel(out, f) }]));
  const skipped: Skipped[] = [];
  const merge = (r: { perImage: Record<string, number | string>[]; skipped: Skipped[] }, cols: readonly ScoreColumn[]): void => {
    for (const p of r.perImage) { const s = byFile.get(p['file'] as string); if (s) for (const c of cols) (s as Record<string, unknown>)[c] = p[c]; }
    for (const s of r.skipped) if (!skipped.some((x) => x.file === s.file)) skipped.push({ file: rel(out, s.file), reason: s.reason });
  };
  const opts = { cacheDir };
  if (metrics.includes('clip')) merge(await evalClip(n.clip!, files, reference, rec.caption, opts), ['clip_i', 'clip_t']);
  if (metrics.includes('dino')) merge(await evalDino(n.dino!, files, reference, { ...opts, ...(n.dinoHeads ? { heads: n.dinoHeads } : {}) }), ['dino', 'dino_structure']);
  if (metrics.includes('lpips')) merge(await evalLpips(n.lpips!, files, reference, opts), ['lpips']);
  return { key: scoreKey(rec, metrics, n), perImage: [...byFile.values()], skipped };
}

function scoreKey(rec: UnitRecord, metrics: readonly MetricName[], n: MetricNetworks): string {
  const nets = metrics.filter((m) => !SET_METRICS.includes(m)).map((m) => `${m}:${networkId(n[NETWORK_OF[m]]!)}${m === 'dino' ? `:${n.dinoHeads ?? ''}` : ''}`);
  return `${rec.finished}|${nets.join('|')}`;
}

export async function runBenchmark(o: BenchmarkOptions): Promise<BenchmarkResult> {
  const out = path.resolve(o.out);
  const networks = o.networks ?? {};
  // Default: every metric whose network is given (KID and IS are asked for by name: they share --fid-model).
  const metrics = o.metrics ?? METRIC_NAMES.filter((m) => m !== 'kid' && m !== 'is' && networks[NETWORK_OF[m]] !== undefined);
  checkNetworks(metrics, networks);
  if (o.metrics === undefined && metrics.length === 0) o.onWarning?.('no metric networks given (--clip-model, --dino-model, --lpips-model, --fid-model): generating only; --metrics none silences this');
  const generate = o.generate !== false;
  const stored = readJson<{ model: string; settings: BenchmarkSettings; configs: GridConfig[] }>(path.join(out, 'benchmark.json'));
  if (!generate && !stored) throw new InputError(`--out ${o.out}: no benchmark.json there (nothing generated yet)`);
  const configs = o.configs ?? (generate ? undefined : stored?.configs);
  if (!configs || configs.length === 0) throw new InputError('--methods: the grid has no configuration');
  const dataset = loadBenchmarkDataset(o.data, o.limit);
  // Scoring what exists: the settings are those the folder was made with.
  const s = generate ? o.settings ?? {} : stored!.settings;
  let ck: Checkpoint | undefined;
  const model = (): Checkpoint => (ck ??= (o.openModel ?? ((p: string) => openCheckpoint(p)))(o.model));
  const prior = stored?.settings;
  let width = s.width ?? prior?.width, height = s.height ?? prior?.height;
  if (width === undefined || height === undefined) {
    const size = model().unet().sampleSize * model().autoencoder().scaleFactor;
    width ??= size; height ??= size;
  }
  const settings: BenchmarkSettings = {
    steps: s.steps ?? 50, guidance: s.guidance ?? 7.5, numImages: s.numImages ?? 4, width, height, seed: s.seed ?? 82,
    negativePrompt: s.negativePrompt ?? DEFAULT_NEGATIVE_PROMPT, promptSuffix: s.promptSuffix ?? DEFAULT_PROMPT_SUFFIX,
    task: s.task ?? 'variation', params: s.params ?? {},
  };
  if (!Number.isInteger(settings.numImages) || settings.numImages < 1) throw new InputError(`--num-images ${settings.numImages}: expected an integer >= 1`);
  // LPIPS' AlexNet needs 63 px: say so before hours of generation, not after.
  if (metrics.includes('lpips') && Math.min(settings.width, settings.height) < 63) throw new InputError(`--metrics lpips: LPIPS (AlexNet) needs images of at least 63x63; the run makes ${settings.width}x${settings.height} (--width/--height)`);
  const kidOptions = { subsets: o.kid?.subsets ?? 100, subsetSize: o.kid?.subsetSize ?? 1000, seed: o.kid?.seed ?? 123 };
  const isOptions = { splits: o.inceptionScore?.splits ?? 10, seed: o.inceptionScore?.seed ?? 123 };
  if (!Number.isInteger(kidOptions.subsets) || kidOptions.subsets < 1) throw new InputError(`--kid-subsets ${kidOptions.subsets}: expected an integer >= 1`);
  if (!Number.isInteger(kidOptions.subsetSize) || kidOptions.subsetSize < 2) throw new InputError(`--kid-subset-size ${kidOptions.subsetSize}: expected an integer >= 2`);
  if (!Number.isInteger(isOptions.splits) || isOptions.splits < 1) throw new InputError(`--is-splits ${isOptions.splits}: expected an integer >= 1`);
  const nets = openNetworks(metrics, networks);
  const release = lockFolder(out);
  try {
    removeStaleTemporaries(out);
    if (generate) manifest(out, o, settings, configs, model().precision);
    const skipped: Skipped[] = [];
    const warn = (m: string): void => o.onWarning?.(m);

    // References: decoded once, resized to the run's size and stored as the model saw them.
    const references = new Map<string, RGBImage | 'stored'>();
    const refFile = (e: BenchmarkEntry): string => path.join(out, 'references', `${e.id}.png`);
    const reference = async (e: BenchmarkEntry): Promise<RGBImage | undefined> => {
      const have = references.get(e.id);
      if (have && have !== 'stored') return have;
      let im: RGBImage;
      try {
        if (!fs.existsSync(e.image)) throw new Error('no such file');
        im = referenceAtSize(await readImageRGB(e.image), 8, settings.width, settings.height);
      } catch (err) {
        if (!skipped.some((x) => x.file === e.image)) {
          const reason = (err as Error).message.replace(`${e.image}: `, '');
          skipped.push({ file: e.image, reason });
          warn(`skipped ${e.image}: ${reason}`);
        }
        return undefined;
      }
      writeFileAtomic(refFile(e), await encodePNG(im));
      references.set(e.id, im);
      return im;
    };

    // Units (configuration-major, so one configuration's graphs are built once and released after).
    const recordFile = (c: GridConfig, e: BenchmarkEntry): string => path.join(out, 'runs', c.id, `${e.id}.json`);
    const isDone = (c: GridConfig, e: BenchmarkEntry): UnitRecord | undefined => {
      const r = readJson<UnitRecord>(recordFile(c, e));
      return r && r.image === e.image && r.caption === e.caption && r.files.every((f) => fs.existsSync(path.join(out, f))) ? r : undefined;
    };
    const units = configs.flatMap((c) => dataset.entries.map((e, index) => ({ c, e, index })));
    const pending = generate ? units.filter((u) => !isDone(u.c, u.e)) : [];
    const rowsOf = (c: GridConfig): number => {
      const { steps, guidance } = methodOptions(c, settings);
      return steps * (1 + (guidance > 1 ? 2 * settings.numImages + 2 : settings.numImages + 1)); // inversion row + sampling rows
    };
    const totalWork = pending.reduce((a, u) => a + rowsOf(u.c), 0);
    let work = 0, generated = 0;
    let lastConfig: string | undefined;
    for (const [n, u] of pending.entries()) {
      o.signal?.throwIfAborted();
      const ref = await reference(u.e);
      const unitWork = rowsOf(u.c);
      if (!ref) {
        work += unitWork;
        o.onProgress?.({ phase: 'generate', done: work, total: totalWork, units: n + 1, unitsTotal: pending.length, detail: `${u.c.label} ${u.e.id} (skipped)` });
        continue;
      }
      if (lastConfig !== undefined && lastConfig !== u.c.id) await releaseSessions(); // the next method builds other graphs
      lastConfig = u.c.id;
      const { steps, guidance, options } = methodOptions(u.c, settings);
      const seed = settings.seed + u.index;
      const prompt = `${u.e.caption}${settings.promptSuffix}`;
      const inversionPrompt = settings.task === 'variation' ? prompt : '';
      const method = createMethod(u.c.method, steps, { ...options, permutationSeed: seed });
      const t0 = performance.now();
      const startWork = work;
      const r = await vary(model(), {
        reference: ref, method, prompt, inversionPrompt, negativePrompt: settings.negativePrompt, steps, guidance,
        numImages: settings.numImages, width: settings.width, height: settings.height, noise: new TorchGenerator(seed), signal: o.signal,
        onWarning: warn,
        onProgress: (e) => {
          if (e.stage !== 'invert' && e.stage !== 'denoise') return;
          const frac = e.stage === 'invert' ? (e.step / e.total) * (1 / (1 + 2 * settings.numImages + 1)) : 1 / (1 + 2 * settings.numImages + 1) + (e.step / e.total) * (1 - 1 / (1 + 2 * settings.numImages + 1));
          o.onProgress?.({ phase: 'generate', done: startWork + frac * unitWork, total: totalWork, units: n, unitsTotal: pending.length, detail: `${u.c.label} ${u.e.id}` });
        },
      });
      const files: string[] = [];
      for (const [k, im] of r.images.entries()) {
        const file = path.join(out, 'images', u.c.id, `${u.e.id}-${k}.png`);
        const parameters = {
          method: method.name, guidance_mode: method.guidanceMode, reference: u.e.image, prompt, inversion_prompt: inversionPrompt,
          negative_prompt: settings.negativePrompt, steps, guidance, seed: String(seed), noise: 'torch', model: o.model, ...options, index: k, benchmark_config: u.c.id,
        };
        writeFileAtomic(file, await encodePNG(im, { parameters: JSON.stringify(parameters), Software: 'visprompt' }));
        files.push(rel(out, file));
      }
      const rec: UnitRecord = {
        config: u.c.id, reference: u.e.id, image: u.e.image, caption: u.e.caption, prompt, seed, files,
        seconds: (performance.now() - t0) / 1000, rowsPerStep: r.rowsPerStep, finished: new Date().toISOString(),
      };
      writeJsonAtomic(recordFile(u.c, u.e), rec);
      work = startWork + unitWork;
      generated++;
      o.onProgress?.({ phase: 'generate', done: work, total: totalWork, units: n + 1, unitsTotal: pending.length, detail: `${u.c.label} ${u.e.id}` });
      o.onUnitDone?.(u.c.id, u.e.id);
    }
    if (lastConfig !== undefined) await releaseSessions();
    // Undecodable references that no unit needed this run are still found and listed.
    for (const e of dataset.entries) if (!fs.existsSync(refFile(e))) await reference(e);

    // Scores per unit (stored; recomputed only when the unit or a network changed).
    const done = units.flatMap((u) => { const r = isDone(u.c, u.e); return r ? [{ ...u, r }] : []; });
    const perUnit = new Map<string, ScoreRecord>();
    const pairMetrics = metrics.filter((m) => !SET_METRICS.includes(m));
    for (const [i, u] of done.entries()) {
      o.signal?.throwIfAborted();
      if (pairMetrics.length === 0) break;
      const file = path.join(out, 'runs', u.c.id, `${u.e.id}.scores.json`);
      const old = readJson<ScoreRecord>(file);
      let sc = old && old.key === scoreKey(u.r, pairMetrics, networks) ? old : undefined;
      if (!sc) { sc = await scoreUnit(u.r, out, pairMetrics, networks, o.cacheDir ?? path.join(out, 'feature-cache')); writeJsonAtomic(file, sc); }
      perUnit.set(`${u.c.id}/${u.e.id}`, sc);
      for (const x of sc.skipped) if (!skipped.some((y) => y.file === x.file)) skipped.push(x);
      o.onProgress?.({ phase: 'score', done: i + 1, total: done.length, units: i + 1, unitsTotal: done.length, detail: `${u.c.label} ${u.e.id}` });
    }
    if (pairMetrics.length) await releaseSessions();

    // FID / KID per configuration: its generated images vs the references they came from; IS: its images.
    const fid = new Map<string, { fid: number | null; n_real: number; n_generated: number; note?: string }>();
    const kid = new Map<string, NonNullable<ConfigResult['kid']>>();
    const iscore = new Map<string, NonNullable<ConfigResult['inceptionScore']>>();
    if (nets.inception) {
      const net = nets.inception;
      for (const [i, c] of configs.entries()) {
        o.signal?.throwIfAborted();
        const mine = done.filter((u) => u.c.id === c.id);
        const gen = mine.flatMap((u) => u.r.files.map((f) => path.join(out, f)));
        const real = mine.map((u) => path.join(out, 'references', `${u.e.id}.png`));
        const setSkipped: Skipped[] = [];
        const opts = { cacheDir: o.cacheDir ?? path.join(out, 'feature-cache') };
        const needReal = metrics.includes('fid') || metrics.includes('kid');
        const fr = needReal && real.length >= 2 ? await inceptionFeatures(net, real, opts, setSkipped) : [];
        const fg = gen.length >= (needReal ? 2 : 1) ? await inceptionFeatures(net, gen, opts, setSkipped) : [];
        for (const x of setSkipped) if (!skipped.some((y) => y.file === x.file)) skipped.push(x);
        if (metrics.includes('fid')) fid.set(c.id, fidOf(c, fr, fg, warn));
        if (metrics.includes('kid')) {
          const m = kidOptions.subsetSize;
          if (fr.length < m || fg.length < m) {
            const note = `KID with subsets of ${m} needs at least ${m} real and ${m} generated images (${fr.length} / ${fg.length}); lower --kid-subset-size`;
            if (mine.length) warn(`${c.label}: ${note}`);
            kid.set(c.id, { mean: null, std: null, subsets: kidOptions.subsets, subsetSize: m, note });
          } else {
            const r = kernelInceptionDistance(fr, fg, kidOptions);
            kid.set(c.id, { mean: r.kidMean, std: r.kidStd, subsets: kidOptions.subsets, subsetSize: m });
          }
        }
        if (metrics.includes('is')) {
          if (fg.length === 0) iscore.set(c.id, { mean: null, std: null, splits: isOptions.splits, n: 0, note: 'no generated images' });
          else {
            const r = inceptionScore(inceptionLogits(fg, nets.fc!.weight, nets.fc!.classes), isOptions);
            iscore.set(c.id, { mean: r.isMean, std: Number.isFinite(r.isStd) ? r.isStd : null, splits: isOptions.splits, n: fg.length });
          }
        }
        o.onProgress?.({ phase: 'fid', done: i + 1, total: configs.length, units: i + 1, unitsTotal: configs.length, detail: c.label });
      }
      await releaseSessions();
    }

    // Aggregate: per configuration and metric, the mean over all images and a 95% CI over references.
    const results: ConfigResult[] = configs.map((c) => {
      const mine = done.filter((u) => u.c.id === c.id);
      const rows = mine.flatMap((u) => (perUnit.get(`${c.id}/${u.e.id}`)?.perImage ?? []).map((p) => ({ ...p, reference: u.e.id })));
      const stats: ConfigResult['metrics'] = {};
      for (const col of SCORE_COLUMNS) {
        const perRef = mine.map((u) => (perUnit.get(`${c.id}/${u.e.id}`)?.perImage ?? []).map((p) => p[col]).filter((v): v is number => typeof v === 'number' && Number.isFinite(v)))
          .filter((v) => v.length > 0);
        if (perRef.length === 0) continue;
        const all = perRef.flat();
        const ci = meanCI95(perRef.map((v) => v.reduce((a, b) => a + b, 0) / v.length));
        stats[col] = { mean: all.reduce((a, b) => a + b, 0) / all.length, ci95: ci.ci95, n: all.length, references: perRef.length };
      }
      const seconds = mine.map((u) => u.r.seconds);
      return {
        config: c, settings: { ...methodOptions(c, settings) }, references: mine.length, images: mine.reduce((a, u) => a + u.r.files.length, 0),
        metrics: stats, fid: fid.get(c.id), kid: kid.get(c.id), inceptionScore: iscore.get(c.id), perImage: rows, secondsPerUnit: seconds.length ? seconds.reduce((a, b) => a + b, 0) / seconds.length : null,
        units: mine.map((u) => ({ reference: u.e.id, caption: u.e.caption, files: u.r.files })),
      };
    });
    const input: ReportInput = {
      out, model: generate ? o.model : stored!.model, data: dataset.source, settings, metrics, networks, configs: results, skipped,
      references: dataset.entries.filter((e) => fs.existsSync(refFile(e))).map((e) => ({ id: e.id, caption: e.caption, file: rel(out, refFile(e)) })),
      totalReferences: dataset.entries.length, reportRows: o.reportRows ?? 50,
    };
    const files = await writeReport(input);
    return { out, generated, resumed: done.length - generated, skipped, configs: results, files };
  } finally {
    release();
  }
}

/** FID of one configuration (pytorch-fid's Frechet distance); rank-deficient sets are noted and warned about, as pytorch-fid does. */
function fidOf(c: GridConfig, fr: Float32Array[], fg: Float32Array[], warn: (m: string) => void): { fid: number | null; n_real: number; n_generated: number; note?: string } {
  if (fr.length < 2 || fg.length < 2) return { fid: null, n_real: fr.length, n_generated: fg.length, note: 'needs at least 2 real and 2 generated images' };
  const r = frechetDistance(featureStats(fr, 'references'), featureStats(fg, `${c.id} images`));
  if (r.warnings.length === 0) return { fid: r.fid, n_real: fr.length, n_generated: fg.length };
  const note = `rank-deficient: ${fr.length} real / ${fg.length} generated images for ${fg[0]!.length} feature dimensions (the covariances are rank-deficient, so the estimate is biased; pytorch-fid's README asks for at least 2048 images a set)`;
  warn(`FID of ${c.label}: ${note}`);
  return { fid: r.fid, n_real: fr.length, n_generated: fg.length, note };
}
