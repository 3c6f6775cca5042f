/**
 * CLI wiring of the commands that are not sampling commands (tokenize, embed-text, embed-image, inspect,
 * train-aligner, train-attribute, eval clip|dino|lpips|fid) and of the global flags, as test/cli-wiring.test.ts
 * does for generate / invert / vary / inject / edit / fuse: one table (ROWS) drives one test; each row's CLI
 * output (the --out file, or the JSON it prints) must equal the library call with the same option and differ
 * from the command's default run (or equal it, for `same` rows). A second test walks `visprompt --help`: every
 * command, every subcommand and every flag (global ones included) needs a row here or in cli-wiring.test.ts,
 * or a reason in NOT_RESULT, so nothing new lands unwired.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Checkpoint } from '../src/components/checkpoint.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { evalClip, evalDino, evalFid, evalLpips, type PairScores } from '../src/eval/evaluate.js';
import { readImageRGB } from '../src/io/image.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { inspectTensorFile } from '../src/io/tensor-file.js';
import { createNoise } from '../src/noise/gaussian.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { trainAligner, type TrainAlignerOptions } from '../src/pipelines/train-aligner.js';
import { trainAttribute, type TrainAttributeOptions } from '../src/pipelines/train-attribute.js';
import { maxAbsDiff, type Tensor } from '../src/tensor.js';
import { FIXTURES, goldenPath, modelDir } from './helpers.js';
import { BENCH_NOT_RESULT, benchmarkCovered } from './benchmark-wiring-table.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-wiring-tools-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const SD15 = modelDir('tiny-sd15');
const SDXL = modelDir('tiny-sdxl');
const SINGLE = path.join(FIXTURES, 'models', 'tiny-pickles', 'tiny-sd15.safetensors');
const CKPT = path.join(FIXTURES, 'models', 'tiny-pickles', 'tiny-sd15.ckpt');
const LORA = path.join(FIXTURES, 'models', 'tiny-lora', 'lora_kohya_sd15.safetensors');
const CLIP = modelDir('tiny-clip');
const DINO = modelDir('tiny-dino-vit');
const LPIPS = modelDir('lpips-alex-random');
const REF = goldenPath('tiny-sd15', 'inversion_input.png');
const OTHER = goldenPath('tiny-sd15', 'vae_input.png');
const MET = path.join(FIXTURES, 'goldens', 'metrics');
const GRADS = path.join(FIXTURES, 'goldens', 'grads');

/** Inputs the rows share. */
const PAIRS = path.join(tmp, 'pairs.jsonl');
{
  const meta = JSON.parse(fs.readFileSync(path.join(GRADS, 'vcf_aligner.json'), 'utf8')) as { captions: string[]; images: { png: string }[] };
  const lines = meta.images.map((im, i) => JSON.stringify({ image: path.join(GRADS, im.png), caption: meta.captions[i] }));
  lines.push(JSON.stringify({ image: REF, caption: 'a photo of a cat' }));
  fs.writeFileSync(PAIRS, lines.join('\n') + '\n');
}
const ALIGNER_INIT = path.join(tmp, 'aligner-init.safetensors');
{
  const g = readAllFloat32(path.join(GRADS, 'vcf_aligner.safetensors'));
  writeSafetensors(ALIGNER_INIT, Object.fromEntries(['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((n) => [n, g[`aligner.${n}`]!])));
}
const FACES = path.join(tmp, 'faces');
fs.mkdirSync(FACES);
fs.copyFileSync(path.join(GRADS, 'asyrp_input.png'), path.join(FACES, 'a.png'));
const GENERATED = path.join(tmp, 'generated');
fs.mkdirSync(GENERATED);
for (const f of ['generated_0.png', 'generated_1.png']) fs.copyFileSync(path.join(MET, f), path.join(GENERATED, f));
/** Evaluation features are cached here (never in the user's home). */
const EVAL_CACHE = path.join(tmp, 'eval-cache');

/** A command's output, normalised: the tensors of its --out file, or the JSON it printed. */
type Out = { tensors: Record<string, Tensor> } | { json: unknown };

type Tool = 'tokenize' | 'embed-text' | 'embed-image' | 'inspect' | 'train-aligner' | 'train-attribute' | 'eval clip' | 'eval dino' | 'eval lpips' | 'eval fid' | 'generate';

interface Row {
  cmd: Tool;
  /** Flags after the command's base ones. */
  flags: string[];
  /** Positional arguments (tokenize's texts, inspect's file), instead of the base ones. */
  args?: string[];
  /** Global flags, before the command. */
  globals?: string[];
  /** The library call with the same options (absent for `same` / `error` rows). */
  lib?: (out: string) => Promise<Out>;
  /** The comparison run (default: the command's base flags). */
  vs?: string[];
  same?: boolean;
  error?: RegExp;
  /** Run before the CLI and before the library call, with the output path each will use. */
  prepare?: (out: string) => Promise<void>;
  /** Extra check on the CLI run (e.g. a cache folder was written). */
  check?: () => void;
  /** Flags this row covers (default: every `--x` in globals and flags). */
  covers?: string[];
}

/** How each command is run: base flags; its result is its --out file (`out`) or its stdout JSON. */
const BASE: Record<Tool, { flags: string[]; args?: string[]; out?: boolean; save?: string }> = {
  tokenize: { flags: ['--model', SD15], args: ['a cat'] },
  'embed-text': { flags: ['--model', SD15, '--prompt', 'a cat'], out: true },
  'embed-image': { flags: ['--model', SD15, '--image', REF], out: true },
  inspect: { flags: [], args: [SINGLE] },
  // 4 pairs, batches of 2: one epoch is 2 steps.
  'train-aligner': { flags: ['--model', SD15, '--data', PAIRS, '--batch-size', '2'], out: true },
  'train-attribute': { flags: ['--model', SD15, '--images', FACES, '--source', 'a photo of a person', '--target', 'a photo of a smiling person', '--clip', CLIP, '--iterations', '1', '--steps', '4', '--t-edit', '500'], out: true },
  'eval clip': { flags: ['--json', '--model', CLIP, '--image', path.join(MET, 'generated_0.png'), '--reference', path.join(MET, 'reference.png')] },
  'eval dino': { flags: ['--json', '--model', DINO, '--image', path.join(MET, 'generated_0.png'), '--reference', path.join(MET, 'reference.png')] },
  'eval lpips': { flags: ['--json', '--model', LPIPS, '--image', path.join(MET, 'lpips_var.png'), '--reference', path.join(MET, 'lpips_ref.png')] },
  'eval fid': { flags: ['--json', '--features-a', path.join(MET, 'fid_features_a.safetensors'), '--features-b', path.join(MET, 'fid_features_b.safetensors')] },
  generate: { flags: ['--prompt', 'a cat', '--steps', '2', '--width', '64', '--height', '64', '--seed', '5'], save: '--save-latents' },
};

const checkpoints = new Map<string, Checkpoint>();
const ck = (p = SD15, o: Parameters<typeof openCheckpoint>[1] = {}): Checkpoint => {
  const key = `${p} ${JSON.stringify(o)}`;
  if (!checkpoints.has(key)) checkpoints.set(key, openCheckpoint(p, o));
  return checkpoints.get(key)!;
};
const tensors = (t: Record<string, Tensor>): Out => ({ tensors: t });
/** What the CLI prints for one image (the means), or for a folder (means, n, per_image, skipped). */
const scores = <K extends string>(r: PairScores<K>): Out => ({ json: JSON.parse(JSON.stringify(r.perImage.length === 1 && r.skipped.length === 0 ? { ...r.means } : { ...r.means, n: r.perImage.length, per_image: r.perImage, skipped: r.skipped })) as unknown });
const tokens = (texts: string[], c = ck()): Out => ({ json: texts.map((t) => { const e = c.tokenizer().encode(t); return { input_ids: e.input_ids, attention_mask: e.attention_mask }; }) });
const embedText = async (c: Checkpoint, prompt: string, clipSkip?: number): Promise<Out> => {
  const e = await c.textEncoder().encode([prompt], { clipSkip });
  return tensors({ last_hidden_state: e.lastHiddenState, pooler_output: e.poolerOutput });
};
/** SDXL: both encoders and the UNet's conditioning (diffusers' encode_prompt). */
const embedTextXL = async (c: Checkpoint, prompt: string, prompt2: string): Promise<Out> => {
  const e1 = await c.textEncoder().encode([prompt]);
  const e2 = await c.textEncoder2().encode([prompt2]);
  const both = await c.conditioner().encode([prompt], { prompts2: [prompt2] });
  return tensors({
    last_hidden_state: e1.lastHiddenState, pooler_output: e1.poolerOutput, 'text_encoder_2.last_hidden_state': e2.lastHiddenState,
    'text_encoder_2.text_embeds': (await c.textEncoder2().encodeHidden([prompt2], 1)).pooled, prompt_embeds: both.embeds, pooled_prompt_embeds: both.pooled!,
  });
};
const embedImage = async (file: string): Promise<Out> => {
  const r = await ck().imageEncoder().encode([await readImageRGB(file)]);
  return tensors({ image_embeds: r.imageEmbeds, last_hidden_state: r.lastHiddenState, penultimate_hidden_state: r.penultimateHiddenState });
};
const aligner = async (out: string, o: Partial<TrainAlignerOptions>): Promise<Out> => {
  await trainAligner(ck(), { data: PAIRS, out, batchSize: 2, ...o });
  return tensors(readAllFloat32(out));
};
const attribute = async (out: string, o: Partial<TrainAttributeOptions>): Promise<Out> => {
  await trainAttribute(ck(), { images: FACES, source: 'a photo of a person', target: 'a photo of a smiling person', clip: CLIPModel.open(CLIP), out, iterations: 1, steps: 4, tEdit: 500, ...o });
  return tensors(readAllFloat32(out));
};
const generate = async (c: Checkpoint): Promise<Out> => tensors({ latents: (await textToImage(c, { prompt: 'a cat', steps: 2, width: 64, height: 64, noise: createNoise('torch', 5) })).latents });
/** train-aligner --resume: the output already holds a 1-step run (at another lr, so that resuming differs from starting over). */
const oneStep = async (out: string): Promise<void> => { await trainAligner(ck(), { data: PAIRS, out, steps: 1, batchSize: 2, seed: 3, lr: 0.05 }); };
const graphCache = path.join(tmp, 'graph-cache');
const nonEmpty = (dir: string) => () => assert.ok(fs.existsSync(dir) && fs.readdirSync(dir).length > 0, `${dir} was not written`);
const FID = { features: path.join(MET, 'fid_features_a.safetensors') }, FID_B = { features: path.join(MET, 'fid_features_b.safetensors') };
const IMG0 = path.join(MET, 'generated_0.png'), REFIMG = path.join(MET, 'reference.png');

const ROWS: Row[] = [
  { cmd: 'tokenize', flags: [], args: ['a cat', 'a dog', '-with a dash'], lib: async () => tokens(['a cat', 'a dog', '-with a dash']) },
  // A single file has no tokenizer of its own: the global --config folder's is used.
  { cmd: 'tokenize', globals: ['--config', SD15], flags: ['--model', SINGLE], same: true },

  { cmd: 'embed-text', flags: ['--prompt', 'a dog'], lib: () => embedText(ck(), 'a dog') },
  { cmd: 'embed-text', flags: ['--clip-skip', '1'], lib: () => embedText(ck(), 'a cat', 1) },
  { cmd: 'embed-text', flags: ['--model', SDXL, '--prompt-2', 'a dog'], vs: ['--model', SDXL], lib: () => embedTextXL(ck(SDXL), 'a cat', 'a dog') },
  { cmd: 'embed-text', flags: ['--prompt-2', 'a dog'], error: /error: --prompt-2: this model has one text encoder/ },
  { cmd: 'embed-image', flags: ['--image', OTHER], lib: () => embedImage(OTHER), covers: [] },

  { cmd: 'inspect', flags: [], args: [LORA], lib: async () => ({ json: inspectTensorFile(LORA).map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape })) }) },
  { cmd: 'inspect', flags: [], args: [CKPT], lib: async () => ({ json: inspectTensorFile(CKPT).map((e) => ({ name: e.name, dtype: e.dtype, shape: e.shape })) }) },

  { cmd: 'train-aligner', flags: ['--steps', '2', '--batch-size', '3', '--lr', '0.01', '--seed', '4', '--hidden', '16', '--lambda-rec', '0.5'], lib: (out) => aligner(out, { steps: 2, batchSize: 3, lr: 0.01, seed: 4, hidden: 16, lambdaRec: 0.5 }) },
  { cmd: 'train-aligner', flags: ['--init', ALIGNER_INIT, '--no-shuffle', '--epochs', '2', '--fraction', '0.75'], lib: (out) => aligner(out, { init: ALIGNER_INIT, shuffle: false, epochs: 2, fraction: 0.75 }), vs: ['--epochs', '2'] },
  { cmd: 'train-aligner', flags: ['--resume', '--steps', '3', '--seed', '3'], prepare: oneStep, lib: (out) => aligner(out, { resume: true, steps: 3, seed: 3 }), vs: ['--steps', '3', '--seed', '3'] },
  // Intermediate checkpoints go to the same --out: the final file is the same.
  { cmd: 'train-aligner', flags: ['--steps', '2', '--save-every', '1'], vs: ['--steps', '2'], same: true, covers: ['--save-every'] },
  { cmd: 'train-aligner', flags: ['--steps', '2', '--clip-skip', '1'], lib: (out) => aligner(out, { steps: 2, clipSkip: 1 }), vs: ['--steps', '2'] },

  { cmd: 'train-attribute', flags: ['--iterations', '2', '--lr', '0.1', '--seed', '5', '--steps', '5', '--t-edit', '300', '--source', 'a photo', '--target', 'a photo of a smiling face'],
    lib: (out) => attribute(out, { iterations: 2, lr: 0.1, seed: 5, steps: 5, tEdit: 300, source: 'a photo', target: 'a photo of a smiling face' }) },
  { cmd: 'train-attribute', flags: ['--visual-reference', OTHER, '--clip', CLIP], lib: (out) => attribute(out, { visualReference: OTHER }) },

  { cmd: 'eval clip', flags: ['--reference', OTHER, '--text', 'a cat'], lib: async () => scores(await evalClip(CLIP, [IMG0], OTHER, 'a cat')) },
  { cmd: 'eval clip', flags: ['--image', GENERATED], lib: async () => scores(await evalClip(CLIP, [path.join(GENERATED, 'generated_0.png'), path.join(GENERATED, 'generated_1.png')], REFIMG, undefined)) },
  { cmd: 'eval clip', flags: ['--no-cache'], same: true },
  { cmd: 'eval clip', flags: ['--cache-dir', path.join(tmp, 'clip-cache')], same: true, check: nonEmpty(path.join(tmp, 'clip-cache')) },
  { cmd: 'eval dino', flags: ['--reference', OTHER, '--heads', '2'], lib: async () => scores(await evalDino(DINO, [IMG0], OTHER, { heads: 2 })) },
  { cmd: 'eval lpips', flags: ['--image', path.join(MET, 'lpips_other.png')], lib: async () => scores(await evalLpips(LPIPS, [path.join(MET, 'lpips_other.png')], path.join(MET, 'lpips_ref.png'))) },
  { cmd: 'eval lpips', flags: ['--reference', path.join(MET, 'lpips_other.png')], lib: async () => scores(await evalLpips(LPIPS, [path.join(MET, 'lpips_var.png')], path.join(MET, 'lpips_other.png'))) },
  { cmd: 'eval fid', flags: ['--features-b', FID.features], lib: async () => { const r = await evalFid(FID, FID, undefined); return { json: { fid: r.fid, n_a: r.n_a, n_b: r.n_b } }; } },
  { cmd: 'eval fid', flags: ['--features-a', FID_B.features, '--features-b', FID.features, '--kid', '--kid-subsets', '3', '--kid-subset-size', '8', '--kid-seed', '7'],
    lib: async () => { const r = await evalFid(FID_B, FID, undefined, { kid: { subsets: 3, subsetSize: 8, seed: 7 } }); return { json: { fid: r.fid, n_a: r.n_a, n_b: r.n_b, kid_mean: r.kid!.kidMean, kid_std: r.kid!.kidStd } }; } },

  // Global flags.
  { cmd: 'embed-text', globals: ['--threads', '1', '--device', 'cpu'], flags: [], same: true },
  { cmd: 'embed-text', globals: ['--graph-cache', graphCache], flags: [], same: true, check: nonEmpty(graphCache) },
  // With --config an explicit --prediction-type still wins over the folder's scheduler config (as diffusers'
  // from_single_file(config=, prediction_type=)); it was once dropped without a word.
  { cmd: 'generate', globals: ['--config', SD15, '--prediction-type', 'v_prediction'], flags: ['--model', SINGLE], lib: () => generate(ck(SINGLE, { config: SD15, predictionType: 'v_prediction' })), vs: ['--model', SINGLE] },
  { cmd: 'generate', globals: ['--prediction-type', 'v_prediction'], flags: ['--model', SINGLE], lib: () => generate(ck(SINGLE, { predictionType: 'v_prediction' })), vs: ['--model', SINGLE] },
  // An SD 1.x file opened as 2.x: other head counts (the 2.x rule, width / 64), so another result. This row found
  // that the library reused the first opening's compiled sessions for a second opening of the same file (fixed).
  { cmd: 'generate', globals: ['--sd-version', '2'], flags: ['--model', SINGLE], lib: () => generate(ck(SINGLE, { sdVersion: 2 })), vs: ['--model', SINGLE] },
  { cmd: 'generate', globals: ['--sd-version', '1'], flags: ['--model', SINGLE], vs: ['--model', SINGLE], same: true },
  // Before the command (test/cli-wiring.test.ts has the per-command --precision rows of the sampling commands).
  { cmd: 'generate', globals: ['--precision', 'int8'], flags: [], lib: () => generate(ck(SD15, { precision: 'int8' })) },
];

/** Flags that do not shape a result, with why (per command: `cmd --flag`; any command: `--flag`). */
const NOT_RESULT: Record<string, string> = {
  '--help': 'commander', '--version': 'commander', '--quiet': 'logging only',
  '--model': 'base input of every row that opens a model (rows change it where it matters: single files, other networks)',
  '--out': 'output path (the rows read it)',
  '--json': 'output format: every eval row reads the JSON',
  'embed-image --image': 'base input (the row changes it)',
  'train-aligner --data': 'base input',
  'train-attribute --images': 'base input',
  'train-attribute --clip': 'base input (the CLIP model of the loss)',
  'eval clip --image': 'base input (a row gives a folder)',
  'eval dino --image': 'base input',
  'eval fid --images-a': 'needs the pytorch-fid Inception weights (not in the fixtures); eval-metrics.test pins the image path of the library',
  'eval fid --images-b': 'as --images-a',
  'eval fid --model': 'as --images-a',
  'eval fid --batch-size': 'as --images-a (batching does not change the features)',
  ...Object.fromEntries(['tokenize', 'embed-text', 'embed-image', 'inspect'].map((c) => [`${c} --precision`, 'int8 quantizes the UNet, ControlNet and VAE; this command runs none of them'])),
  ...Object.fromEntries(['train-aligner', 'train-attribute'].map((c) => [`${c} --precision`, 'gradients run in float32: the CLI warns that int8 does not apply'])),
  ...Object.fromEntries(['eval dino', 'eval lpips', 'eval fid'].flatMap((c) => [[`${c} --cache-dir`, 'the eval commands\' shared cache options: rows on eval clip'], [`${c} --no-cache`, 'as --cache-dir']])),
  ...BENCH_NOT_RESULT,
};
/** Commands whose flags configure a service, not a result: tested by their own files. */
const SERVICE_COMMANDS: Record<string, string> = {
  serve: 'HTTP service configuration (server.test, server-schemas.test, server-browser.test)',
  worker: 'queue worker configuration (server-redis.test)',
  help: 'commander',
};
/** Commands whose rows live in their own table: benchmark's in test/benchmark-wiring-table.ts (run by benchmark-wiring.test). */
const OWN_TABLES = new Set(['benchmark']);
/** Commands whose every flag has a row in test/cli-wiring.test.ts. */
const SAMPLING_COMMANDS = ['generate', 'invert', 'vary', 'inject', 'edit', 'fuse'];

function cliRun(row: { cmd: Tool; flags: string[]; args?: string[]; globals?: string[] }, out: string): { code: number | null; stdout: string; stderr: string } {
  const base = BASE[row.cmd];
  const model = row.cmd === 'generate' && !row.flags.includes('--model') ? ['--model', SD15] : [];
  const outs = base.out ? ['--out', out] : base.save ? ['--out', `${out}.png`, base.save, out] : [];
  const positional = row.args ?? base.args;
  const args = [BIN, ...(row.globals ?? []), ...row.cmd.split(' '), '--quiet', ...model, ...base.flags, ...outs, ...row.flags, ...(positional ? ['--', ...positional] : [])];
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 300_000, env: { ...process.env, VISPROMPT_EVAL_CACHE: EVAL_CACHE } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function cliResult(row: { cmd: Tool; flags: string[]; args?: string[]; globals?: string[] }, out: string): Out {
  const r = cliRun(row, out);
  assert.equal(r.code, 0, `visprompt ${row.globals?.join(' ') ?? ''} ${row.cmd} ${row.flags.join(' ')}:\n${r.stderr}`);
  if (BASE[row.cmd].out || BASE[row.cmd].save) return tensors(readAllFloat32(out));
  const lines = r.stdout.trim().split('\n');
  return { json: JSON.parse(row.cmd === 'inspect' ? r.stdout : lines[lines.length - 1]!) };
}

/** Max difference of two outputs: tensors by max |a - b|, JSON numbers by |a - b| (relative past 1), anything else must be equal. */
function diff(a: Out, b: Out): number {
  if ('tensors' in a && 'tensors' in b) {
    const ka = Object.keys(a.tensors).sort(), kb = Object.keys(b.tensors).sort();
    if (ka.join() !== kb.join()) return Infinity;
    return Math.max(0, ...ka.map((k) => (a.tensors[k]!.shape.join() === b.tensors[k]!.shape.join() ? maxAbsDiff(a.tensors[k]!, b.tensors[k]!) : Infinity)));
  }
  if ('json' in a && 'json' in b) return jsonDiff(a.json, b.json);
  return Infinity;
}
function jsonDiff(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return Number.isNaN(a) && Number.isNaN(b) ? 0 : Math.abs(a - b) / Math.max(1, Math.abs(b));
  if (Array.isArray(a) && Array.isArray(b)) return a.length === b.length ? Math.max(0, ...a.map((x, i) => jsonDiff(x, b[i]))) : Infinity;
  if (a && b && typeof a === 'object' && typeof b === 'object') {
    const ka = Object.keys(a).sort(), kb = Object.keys(b).sort();
    if (ka.join() !== kb.join()) return Infinity;
    return Math.max(0, ...ka.map((k) => jsonDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])));
  }
  return a === b ? 0 : Infinity;
}

const flagsOf = (r: Row): string[] => r.covers ?? [...(r.globals ?? []), ...r.flags].filter((f) => f.startsWith('--') && f !== '--');
const label = (r: Row): string => [...(r.globals ?? []), r.cmd, ...r.flags].map((f) => (f.includes('/') ? path.basename(f) : f)).join(' ');

test('every flag of the other commands and every global flag reaches the library call: CLI = library, and differs from the default', async (t) => {
  const defaults = new Map<string, Out>();
  const only = process.env.VP_WIRING_ONLY ? new RegExp(process.env.VP_WIRING_ONLY) : undefined;
  let n = 0;
  for (const row of ROWS) {
    const name = label(row);
    if (only && !only.test(name)) continue;
    await t.test(name, async () => {
      const dir = fs.mkdtempSync(path.join(tmp, 'row-'));
      const out = path.join(dir, 'cli.safetensors'), libOut = path.join(dir, 'lib.safetensors');
      if (row.error) {
        const r = cliRun(row, out);
        assert.notEqual(r.code, 0, `${name}: accepted, but the command cannot honour it`);
        assert.match(r.stderr, row.error);
        return;
      }
      await row.prepare?.(out);
      const cli = cliResult(row, out);
      row.check?.();
      if (row.lib) {
        await row.prepare?.(libOut);
        const d = diff(cli, await row.lib(libOut));
        assert.ok(d <= 1e-5, `${name}: CLI and library differ (${d})`);
      }
      const vs = row.vs ?? [];
      const key = `${row.cmd} ${vs.join(' ')}`;
      if (!defaults.has(key)) defaults.set(key, cliResult({ cmd: row.cmd, flags: vs }, path.join(fs.mkdtempSync(path.join(tmp, 'default-')), 'o.safetensors')));
      const moved = diff(cli, defaults.get(key)!);
      if (row.same) assert.ok(moved <= 1e-5, `${name}: should equal the default, moved ${moved}`);
      else assert.ok(moved > 1e-4, `${name}: the result did not change (${moved}): the flag is not passed on`);
      n++;
    });
  }
  console.log(`cli-wiring-tools: ${n} rows`);
});

test('every command, subcommand and flag in --help (global flags too) has a wiring row here or in cli-wiring.test, or a reason', () => {
  const help = (args: string[]): string => spawnSync(process.execPath, [BIN, ...args, '--help'], { encoding: 'utf8' }).stdout;
  const flags = (text: string): string[] => [...text.split(/\nCommands:/)[0]!.matchAll(/^\s+(?:-\w, )?(--[a-z0-9-]+)/gm)].map((m) => m[1]!);
  const commands = (text: string): string[] => [...(text.split(/\nCommands:/)[1] ?? '').matchAll(/^ {2}([a-z][a-z0-9-]*)/gm)].map((m) => m[1]!);
  const covered = new Set([...ROWS.flatMap((r) => flagsOf(r).map((f) => (r.globals?.includes(f) ? `global ${f}` : `${r.cmd} ${f}`))), ...benchmarkCovered()]);
  const missing: string[] = [];
  const need = (where: string, flag: string): void => {
    if (!(flag in NOT_RESULT) && !(`${where} ${flag}` in NOT_RESULT) && !covered.has(`${where} ${flag}`)) missing.push(`${where} ${flag}`);
  };
  const root = help([]);
  for (const f of flags(root)) need('global', f);
  for (const cmd of commands(root)) {
    if (cmd in SERVICE_COMMANDS || SAMPLING_COMMANDS.includes(cmd)) continue;
    const text = help([cmd]);
    const subs = commands(text);
    if (subs.length === 0) {
      if (!(cmd in BASE) && !OWN_TABLES.has(cmd)) missing.push(`${cmd} (command without rows)`);
      for (const f of flags(text)) need(cmd, f);
    }
    for (const sub of subs.filter((s) => s !== 'help')) {
      if (!(`${cmd} ${sub}` in BASE)) missing.push(`${cmd} ${sub} (command without rows)`);
      for (const f of flags(help([cmd, sub]))) need(`${cmd} ${sub}`, f);
    }
  }
  assert.deepEqual(missing, [], 'commands / flags without a row in test/cli-wiring-tools.test.ts ROWS (or a reason in NOT_RESULT)');
});
