/**
 * The wiring table of `visprompt benchmark` (as test/cli-wiring.test.ts and cli-wiring-tools.test.ts
 * have for the other commands): each row's CLI run must equal the library call with the same options
 * (runBenchmark) and differ from the command's default run (or equal it, for `same` rows). The result of
 * a run is the folder it writes: every generated and reference image (decoded pixels), the per-configuration
 * metrics of results.json (CLIP, DINO, LPIPS, FID, KID, IS) and the gallery rows of report.html.
 * No side effects on import: cli-wiring-tools.test.ts reads the covered flags from here for its
 * completeness check; test/benchmark-wiring.test.ts creates the fixtures and runs the rows.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { expandGrid, readGridFile, type GridSpec } from '../src/benchmark/grid.js';
import { openCheckpoint } from '../src/components/checkpoint.js';
import type { BenchmarkOptions, BenchmarkSettings } from '../src/benchmark/run.js';
import { FIXTURES, modelDir } from './helpers.js';
import { writeNarrowInception } from './fid-inception-fixture.js';

export const WORK = path.join(os.tmpdir(), `vp-benchmark-wiring-${process.pid}`);
export const DATA = path.join(WORK, 'data');
const TINY = modelDir('tiny-sd15');
const CLIP = modelDir('tiny-clip');
const DINO = modelDir('tiny-dino-vit');
const LPIPS = modelDir('lpips-alex-random');
/** A narrow random-weight FID Inception (test/fid-inception-fixture.ts), written by setup. */
const INCEPTION = path.join(WORK, 'inception-narrow.safetensors');
const GRID = path.join(WORK, 'grid.yaml');
const CACHE = path.join(WORK, 'cli-cache');

/** Three references (and an undecodable file after them, outside every --limit used here). */
export function setupBenchmarkWiring(): void {
  fs.mkdirSync(DATA, { recursive: true });
  fs.copyFileSync(path.join(FIXTURES, 'goldens/tiny-sd15/inversion_input.png'), path.join(DATA, 'cat.png'));
  fs.copyFileSync(path.join(FIXTURES, 'goldens/metrics/reference.png'), path.join(DATA, 'thing.png'));
  fs.copyFileSync(path.join(FIXTURES, 'goldens/metrics/generated_1.png'), path.join(DATA, 'other.png'));
  fs.writeFileSync(path.join(DATA, 'broken.png'), 'not a PNG');
  fs.writeFileSync(path.join(DATA, 'captions.jsonl'), [
    { image: 'cat.png', caption: 'a photograph of a cat' }, { image: 'thing.png', caption: 'a red thing on a table' },
    { image: 'other.png', caption: 'a landscape' }, { image: 'broken.png', caption: 'a damaged file' },
  ].map((x) => JSON.stringify(x)).join('\n'));
  // --methods on the command line replaces the file's; its scoped set and hand-written config stay.
  fs.writeFileSync(GRID, 'methods: [kv-concat]\nset: { indetail-ip.lambdaP: 2 }\nconfigs:\n  - { method: indetail-ip, stratifiedSteps: 0, label: "no SA" }\n');
  writeNarrowInception(INCEPTION, { width: 4, classes: 5 });
}

/** Base flags of every row (after `benchmark --quiet --json --out OUT`): the tiny model, 1 step, K = 1, one reference. */
export const BENCH_BASE = ['--model', TINY, '--data', DATA, '--methods', 'indetail-ip', '--steps', '1', '--num-images', '1', '--width', '64', '--height', '64', '--limit', '1'];

type LibOptions = Omit<Partial<BenchmarkOptions>, 'settings'> & { settings?: Partial<BenchmarkSettings>; grid?: GridSpec };

/** The library call of a row: the base options with `o` on top. */
export function libOptions(out: string, o: LibOptions = {}): BenchmarkOptions {
  const { grid, settings, ...rest } = o;
  return {
    model: TINY, data: DATA, out, configs: expandGrid({ methods: ['indetail-ip'], ...grid }), limit: 1, ...rest,
    settings: { steps: 1, numImages: 1, width: 64, height: 64, ...settings },
  };
}

export interface BenchRow {
  readonly flags: string[];
  /** Options of the library call (absent for `error` rows); a function when they read a fixture file. */
  readonly lib?: LibOptions | (() => LibOptions);
  /** The comparison run's flags (default: the base flags only). */
  readonly vs?: string[];
  readonly same?: boolean;
  readonly error?: RegExp;
  /** Before the CLI and the library call, with the output folder each will use (the library's flag set). */
  readonly prepare?: 'base-run';
  /** Extra check on the CLI run: its --json summary. */
  readonly check?: 'nothing-generated' | 'cache-written';
  /** Flags this row covers (default: every `--x` in flags). */
  readonly covers?: string[];
}

const K3 = ['--limit', '3', '--num-images', '2'];
const NETS = ['--clip-model', CLIP, '--dino-model', DINO, '--lpips-model', LPIPS];
const SETS = ['--fid-model', INCEPTION, '--metrics', 'fid,kid,is', '--kid-subset-size', '2', ...K3];
export const BENCH_CACHE = CACHE;

export const BENCH_ROWS: BenchRow[] = [
  { flags: ['--steps', '2', '--guidance', '3', '--seed', '7'], lib: { settings: { steps: 2, guidance: 3, seed: 7 } } },
  { flags: ['--negative-prompt', 'blurry, dark', '--prompt-suffix', ', a photo', '--task', 'cross-prompt'], lib: { settings: { negativePrompt: 'blurry, dark', promptSuffix: ', a photo', task: 'cross-prompt' } } },
  { flags: ['--num-images', '2', '--limit', '2'], lib: { limit: 2, settings: { numImages: 2 } } },
  { flags: ['--width', '96', '--height', '32'], lib: { settings: { width: 96, height: 32 } } },
  { flags: ['--methods', 'kv-concat'], lib: { grid: { methods: ['kv-concat'] } } },
  // An unscoped --set reaches every method that reads it as a run-wide setting (not part of the config ids).
  { flags: ['--sweep', 'lambdaP=0.5,2', '--set', 'lambdaG=2'], lib: { grid: { sweep: { lambdaP: [0.5, 2] } }, settings: { params: { lambdaG: 2 } } } },
  { flags: ['--sweep', 'lambdaP=0.5', '--sweep', 'stratifiedSteps=0', '--sweep-mode', 'each'], vs: ['--sweep', 'lambdaP=0.5', '--sweep', 'stratifiedSteps=0'],
    lib: { grid: { sweep: { lambdaP: [0.5], stratifiedSteps: [0] }, sweepMode: 'each' } } },
  { flags: ['--grid', GRID], lib: () => ({ grid: { ...readGridFile(GRID), methods: ['indetail-ip'] } }) },
  // Metric networks: given networks select their metrics (no --metrics).
  { flags: NETS, lib: { networks: { clip: CLIP, dino: DINO, lpips: LPIPS } } },
  { flags: [...NETS, '--dino-heads', '2'], vs: NETS, lib: { networks: { clip: CLIP, dino: DINO, lpips: LPIPS, dinoHeads: 2 } } },
  { flags: [...NETS, '--metrics', 'clip'], vs: NETS, lib: { networks: { clip: CLIP, dino: DINO, lpips: LPIPS }, metrics: ['clip'] } },
  { flags: [...NETS, '--cache-dir', CACHE], vs: NETS, same: true, check: 'cache-written' },
  // Set metrics on the narrow Inception: FID of 3 references vs 6 images (rank-deficient: noted), then KID and IS.
  { flags: ['--fid-model', INCEPTION, ...K3], vs: K3, lib: { limit: 3, settings: { numImages: 2 }, networks: { fid: INCEPTION } } },
  { flags: SETS, vs: ['--fid-model', INCEPTION, ...K3], lib: { limit: 3, settings: { numImages: 2 }, networks: { fid: INCEPTION }, metrics: ['fid', 'kid', 'is'], kid: { subsetSize: 2 } } },
  { flags: [...SETS, '--kid-subsets', '3', '--kid-seed', '5', '--is-splits', '2', '--is-seed', '9'], vs: SETS,
    lib: { limit: 3, settings: { numImages: 2 }, networks: { fid: INCEPTION }, metrics: ['fid', 'kid', 'is'], kid: { subsetSize: 2, subsets: 3, seed: 5 }, inceptionScore: { splits: 2, seed: 9 } } },
  // The folder as it is: nothing generated, the same tables.
  { flags: ['--report-only'], prepare: 'base-run', same: true, check: 'nothing-generated', lib: { generate: false } },
  { flags: ['--report-rows', '0'], lib: { reportRows: 0 } },
  // int8 UNet / VAE encoder (the command's own --precision; the global one is a row of cli-wiring-tools).
  { flags: ['--precision', 'int8'], lib: { openModel: (p) => openCheckpoint(p, { precision: 'int8' }) } },
  // KID and IS read the FID Inception: without --fid-model, a one-line error before anything runs.
  { flags: ['--metrics', 'kid'], error: /^error: --metrics kid: give its network with --fid-model$/m, covers: [] },
];

/** `benchmark --flag` entries that shape no result, with why. */
export const BENCH_NOT_RESULT: Record<string, string> = {
  'benchmark --data': 'base input (every row reads the same dataset; test/benchmark.test.ts covers the COCO layout and a folder without captions)',
};

/** `benchmark --x` for every flag some row covers. */
export function benchmarkCovered(): string[] {
  return BENCH_ROWS.flatMap((r) => (r.covers ?? r.flags.filter((f) => f.startsWith('--'))).map((f) => `benchmark ${f}`));
}
