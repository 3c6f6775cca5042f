/**
 * CLI wiring: for every command and every flag, a non-default value must change the result exactly as the
 * library call with the same option does. One table (ROWS) drives one test; a second test reads each
 * command's --help and fails for any flag that has neither a row nor a reason in NOT_RESULT_FLAGS, so a
 * new flag cannot land unwired. Tiny sizes and few steps keep each row to one CLI process (~2-3 s).
 *
 * A row's CLI run and its library run must agree (latents to 1e-5, images to 1 level: the same code in
 * two processes), and differ from the command's defaults (unless `same`), so a flag that is parsed but
 * not passed on, or passed to the wrong option, fails. Flags a command accepts but cannot honour must be
 * a one-line error (`error`), never silently ignored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Checkpoint } from '../src/components/checkpoint.js';
import { ControlNet } from '../src/components/controlnet.js';
import { useTinyVae } from '../src/components/vae-tiny.js';
import { readImageRGB, readPNGText, writePNG, type RGBImage } from '../src/io/image.js';
import { attributeName } from '../src/params/option-spec.js';
import { snakeKey } from '../src/cli/png-parameters.js';
import { readAllFloat32, writeSafetensors } from '../src/io/safetensors.js';
import { createMethod, type MethodOptions } from '../src/methods/index.js';
import { createNoise, NativeGaussian } from '../src/noise/gaussian.js';
import { TorchGenerator } from '../src/noise/torch-generator.js';
import { edit } from '../src/pipelines/edit.js';
import { fuseGenerate } from '../src/pipelines/fuse.js';
import { inject } from '../src/pipelines/inject.js';
import { invert } from '../src/pipelines/invert.js';
import { textToImage } from '../src/pipelines/text-to-image.js';
import { vary } from '../src/pipelines/vary.js';
import { towerOfCLIPModel } from '../src/methods/clip-guidance.js';
import { CLIPModel } from '../src/components/clip-model.js';
import { concatRows, maxAbsDiff, type Tensor } from '../src/tensor.js';
import { FIXTURES, goldenPath, modelDir } from './helpers.js';

/** The CLI of the same build as this test file. */
const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/cli/main.js');
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'vp-wiring-'));
process.on('exit', () => fs.rmSync(tmp, { recursive: true, force: true }));

const SD15 = modelDir('tiny-sd15');
const SDXL = modelDir('tiny-sdxl');
const SINGLE = path.join(FIXTURES, 'models', 'tiny-pickles', 'tiny-sd15.safetensors');
const REF = goldenPath('tiny-sd15', 'inversion_input.png');
const OTHER = goldenPath('tiny-sd15', 'vae_input.png');
const CN = modelDir('tiny-controlnet-sd15');
const CN_IMAGE = goldenPath('tiny-controlnet-sd15', 'conditioning_image.png');
const TAESD = modelDir('tiny-taesd');
const LORA = path.join(FIXTURES, 'models', 'tiny-lora', 'lora_kohya_sd15.safetensors');
const IPA = path.join(FIXTURES, 'models', 'tiny-ip-adapter', 'ip-adapter_sd15.safetensors');
const OTHER_ENCODER = path.join(modelDir('tiny-sd21'), 'image_encoder');
const CLIP = modelDir('tiny-clip');

/** Inputs the rows share, written once. */
const LATENTS = path.join(tmp, 'latents.safetensors');
const latentsIn: Tensor = { shape: [1, 4, 16, 16], data: new TorchGenerator(9).randn([1, 4, 16, 16]) };
writeSafetensors(LATENTS, { latents: latentsIn });
const MASK = path.join(tmp, 'mask.png');
const ATTRIBUTE = path.join(tmp, 'delta.safetensors');
const ALIGNER = path.join(tmp, 'aligner.safetensors');
{
  // The tiny UNet's h-space has 64 channels and a 128-wide time embedding.
  const rnd = new NativeGaussian(9);
  const w = (shape: number[], s: number): Tensor => ({ shape, data: rnd.randn(shape).map((v) => v * s) });
  writeSafetensors(ATTRIBUTE, {
    'conv1.weight': w([64, 64, 1, 1], 0.2), 'conv1.bias': w([64], 0.1), 'temb_proj.weight': w([64, 128], 0.1), 'temb_proj.bias': w([64], 0.1),
    'norm2.weight': { shape: [64], data: new Float32Array(64).fill(1) }, 'norm2.bias': w([64], 0.1), 'conv2.weight': w([64, 64, 1, 1], 0.5), 'conv2.bias': w([64], 0.1),
  });
  const g = readAllFloat32(goldenPath('grads', 'vcf_aligner.safetensors'));
  writeSafetensors(ALIGNER, Object.fromEntries(['norm.weight', 'norm.bias', 'fc1.weight', 'fc1.bias', 'fc2.weight', 'fc2.bias'].map((n) => [n, g[`aligner.${n}`]!])));
}
await writePNG(MASK, { width: 16, height: 16, data: new Uint8Array(16 * 16 * 3).map((_, i) => (Math.floor(i / 3) % 16 < 8 ? 255 : 0)) });

type Cmd = 'generate' | 'invert' | 'vary' | 'inject' | 'edit' | 'fuse';
type Opts = Record<string, unknown>;

/** How the library opens the model for a row (the CLI's --model / --config / --lora / --vae-tiny / globals). */
interface Open { model?: string; config?: string; loras?: { path: string; scale?: number }[]; vaeTiny?: string; precision?: 'int8' }

interface Row {
  cmd: Cmd;
  /** CLI flags added to the command's base flags. */
  flags: string[];
  /** Library options over the command's base options (built fresh per run: noise sources are stateful). */
  lib?: () => Opts | Promise<Opts>;
  open?: Open;
  /** The run that gives the comparison default (default: the command's base flags on the same model). */
  vs?: string[];
  /** The value is a valid way to ask for the default (the result must not change). */
  same?: boolean;
  /** For `same` rows: latents tolerance (default 1e-5; a different but equivalent computation drifts more). */
  sameTol?: number;
  /** The command accepts the flag but cannot honour this value: a one-line error naming it. */
  error?: RegExp;
  /** Flags this row covers (default: every `--x` in `flags`). */
  covers?: string[];
}

const image = (f: string): Promise<RGBImage> => readImageRGB(f);
const noise = (seed: number, kind: 'torch' | 'native' = 'torch') => createNoise(kind, seed);

/** Base CLI flags and base library options of each command. */
const BASE: Record<Cmd, { flags: string[]; lib: () => Promise<Opts> }> = {
  generate: { flags: ['--prompt', 'a cat', '--steps', '2', '--width', '64', '--height', '64', '--seed', '5'], lib: async () => ({ prompt: 'a cat', steps: 2, width: 64, height: 64, noise: noise(5) }) },
  invert: { flags: ['--image', REF, '--steps', '2'], lib: async () => ({ image: await image(REF), prompt: '', steps: 2 }) },
  vary: { flags: ['--image', REF, '--prompt', 'a cat', '--steps', '2', '--seed', '5'], lib: async () => ({ reference: await image(REF), prompt: 'a cat', inversionPrompt: 'a cat', steps: 2, noise: noise(5) }) },
  inject: { flags: ['--image', REF, '--content', OTHER, '--prompt', 'a cat', '--steps', '4', '--seed', '5'], lib: async () => ({ original: await image(REF), content: await image(OTHER), prompt: 'a cat', steps: 4, noise: noise(5) }) },
  edit: { flags: ['--image', REF, '--attribute', ATTRIBUTE, '--prompt', 'a cat', '--steps', '4', '--seed', '5'], lib: async () => ({ image: await image(REF), attribute: ATTRIBUTE, prompt: 'a cat', steps: 4, noise: noise(5) }) },
  fuse: { flags: ['--aligner', ALIGNER, '--image', REF, '--prompt', 'a photograph of a cat', '--steps', '2', '--width', '64', '--height', '64', '--seed', '5'], lib: async () => ({ aligner: ALIGNER, reference: await image(REF), prompt: 'a photograph of a cat', steps: 2, width: 64, height: 64, noise: noise(5) }) },
};

const controls = async (scale = 1) => ({ controls: [{ net: ControlNet.open(CN), image: await image(CN_IMAGE), scale }] });
const ipAdapters = async (scale = 1) => ({ ipAdapters: [{ adapter: IPA, image: await image(OTHER), scale }] });
const CN_FLAGS = ['--controlnet', CN, '--control-image', CN_IMAGE];
const IPA_FLAGS = ['--ip-adapter', IPA, '--ip-image', OTHER];

/**
 * Rows every sampling command shares. generate gets one row per flag (the shared flag parsers are checked
 * one by one there); vary and fuse, whose actions pass the same flags on separately, get them combined in a
 * few rows to keep CLI processes few: a flag dropped by their action still makes CLI and library differ.
 */
function samplingRows(cmd: 'generate' | 'vary' | 'fuse'): Row[] {
  const rows: Row[] = [];
  const one = cmd === 'generate';
  const each: [string[], () => Opts][] = [
    [['--negative-prompt', 'blurry'], () => ({ negativePrompt: 'blurry' })],
    [['--steps', '3'], () => ({ steps: 3 })],
    [['--guidance', '3'], () => ({ guidance: 3 })],
    [['--width', '80'], () => ({ width: 80 })],
    [['--height', '80'], () => ({ height: 80 })],
    [['--num-images', '2'], () => ({ numImages: 2 })],
    [['--seed', '6'], () => ({ noise: noise(6) })],
    [['--noise', 'native'], () => ({ noise: noise(6, 'native') })],
  ];
  if (one) {
    for (const [flags, lib] of each) rows.push({ cmd, flags: flags[0] === '--noise' ? ['--noise', 'native', '--seed', '6'] : flags, lib, vs: flags[0] === '--noise' ? ['--seed', '6'] : undefined, covers: [flags[0]!] });
  } else {
    rows.push({ cmd, flags: each.flatMap((e) => e[0]), lib: () => Object.assign({}, ...each.map((e) => e[1]())) as Opts });
  }
  rows.push({ cmd, flags: ['--latents', LATENTS], lib: () => ({ latents: latentsIn }) });
  if (one) rows.push({ cmd, flags: CN_FLAGS, lib: () => controls() });
  rows.push({ cmd, flags: [...CN_FLAGS, '--control-scale', '0.5'], lib: () => controls(0.5), covers: ['--controlnet', '--control-image', '--control-scale'] });
  rows.push({ cmd, flags: ['--vae-tiny', TAESD, '--lora', `${LORA}:0.5`], open: { vaeTiny: TAESD, loras: [{ path: LORA, scale: 0.5 }] } });
  if (one) rows.push({ cmd, flags: ['--lora', LORA], open: { loras: [{ path: LORA }] } });
  rows.push({ cmd, flags: ['--precision', 'int8'], open: { precision: 'int8' } });
  if (one) rows.push({ cmd, flags: ['--precision', 'fp32'], lib: () => ({}), same: true });
  rows.push({ cmd, flags: ['--model', SINGLE, '--config', SD15], open: { model: SINGLE, config: SD15 }, same: true, covers: ['--config'] });
  if (one) {
    for (const s of ['euler-a', 'dpm++2m'] as const) rows.push({ cmd, flags: ['--scheduler', s], lib: () => ({ scheduler: s }) });
    rows.push({ cmd, flags: ['--timestep-spacing', 'trailing'], lib: () => ({ timestepSpacing: 'trailing' }) });
    rows.push({ cmd, flags: ['--eta', '0.7'], lib: () => ({ eta: 0.7 }) });
  } else {
    // vary and fuse sample with DDIM, eta 0, the model's spacing, as their methods' official code.
    rows.push({ cmd, flags: ['--scheduler', 'ddim'], lib: () => ({}), same: true });
    rows.push({ cmd, flags: ['--scheduler', 'euler'], error: /error: --scheduler euler: .* ddim only/ });
    rows.push({ cmd, flags: ['--timestep-spacing', 'trailing'], error: /error: --timestep-spacing/ });
    rows.push({ cmd, flags: ['--eta', '0.7'], error: /error: --eta/ });
  }
  rows.push({ cmd, flags: [...IPA_FLAGS, '--ip-scale', '0.5', '--image-encoder', OTHER_ENCODER], lib: async () => ({ ...(await ipAdapters(0.5)), imageEncoder: OTHER_ENCODER }) });
  if (one) rows.push({ cmd, flags: IPA_FLAGS, lib: () => ipAdapters(), covers: ['--ip-adapter', '--ip-image'] });
  // Every text encoding of the run (vary: the inversion prompt's too; fuse: before the fusion).
  if (!one) rows.push({ cmd, flags: ['--clip-skip', '1'], lib: () => ({ clipSkip: 1 }) });
  return rows;
}

/** SDXL's second prompt and micro-conditioning (tiny-sdxl), in one row. */
function sdxlRow(cmd: 'generate' | 'invert' | 'vary'): Row {
  const flags = ['--model', SDXL, '--prompt-2', 'a dog', '--original-size', '96x64', '--crop-top-left', '8,4', '--target-size', '96x64'];
  const neg = cmd === 'invert' ? [] : ['--negative-prompt', 'blurry', '--negative-prompt-2', 'ugly'];
  return {
    cmd, flags: [...flags, ...neg], open: { model: SDXL }, vs: ['--model', SDXL, ...neg.slice(0, 2)],
    lib: () => ({ prompt2: 'a dog', micro: { originalSize: [64, 96], cropTopLeft: [8, 4], targetSize: [64, 96] }, ...(neg.length ? { negativePrompt: 'blurry', negativePrompt2: 'ugly' } : {}) }),
  };
}

const m = (name: string, o: MethodOptions = {}, extra: Opts = {}) => () => ({ methodName: name, methodOptions: o, ...extra });
const defaults = (cmd: Cmd): Row => ({ cmd, flags: [], lib: () => ({}), same: true, covers: [] });
const PNO = ['--pno-steps', '1', '--pno-lr', '0.5', '--clip', CLIP];

const ROWS: Row[] = [
  ...(Object.keys(BASE) as Cmd[]).map(defaults),
  { cmd: 'generate', flags: ['--prompt', 'a dog'], lib: () => ({ prompt: 'a dog' }) },
  { cmd: 'generate', flags: ['--clip-skip', '1'], lib: () => ({ clipSkip: 1 }) },
  ...samplingRows('generate'),
  sdxlRow('generate'),

  { cmd: 'invert', flags: ['--prompt', 'a cat', '--steps', '3', '--width', '80', '--height', '80'], lib: () => ({ prompt: 'a cat', steps: 3, width: 80, height: 80 }) },
  { cmd: 'invert', flags: ['--vae-tiny', TAESD, '--lora', LORA], open: { vaeTiny: TAESD, loras: [{ path: LORA }] } },
  { cmd: 'invert', flags: ['--precision', 'int8'], open: { precision: 'int8' } },
  { cmd: 'invert', flags: ['--model', SINGLE, '--config', SD15], open: { model: SINGLE, config: SD15 }, same: true, covers: ['--config'] },
  // Guided inversion (MasaCtrl / StyleAligned): uncond "" + g (cond - uncond) at every inverse step.
  { cmd: 'invert', flags: ['--prompt', 'a cat', '--guidance', '3'], lib: () => ({ prompt: 'a cat', guidance: 3 }), vs: ['--prompt', 'a cat'], covers: ['--guidance'] },
  { cmd: 'invert', flags: ['--scheduler', 'ddim'], lib: () => ({}), same: true },
  { cmd: 'invert', flags: ['--scheduler', 'euler'], error: /error: --scheduler euler: .* ddim only/ },
  sdxlRow('invert'),
  { cmd: 'invert', flags: ['--prompt', 'a cat', '--clip-skip', '1'], lib: () => ({ prompt: 'a cat', clipSkip: 1 }), vs: ['--prompt', 'a cat'], covers: ['--clip-skip'] },

  // --prompt is repeatable (one image per prompt, StyleAligned's prompt list): with the base's --prompt "a cat", two images.
  { cmd: 'vary', flags: ['--prompt', 'a dog', '--inversion-prompt', 'a photo'], lib: () => ({ prompt: 'a cat', prompts: ['a cat', 'a dog'], inversionPrompt: 'a photo' }) },
  // RIVAL's permutation: torch.randperm(h*w) right after torch.manual_seed(--seed) (with --noise torch).
  { cmd: 'vary', flags: ['--method', 'kv-concat', '--t-align', '300', '--t-early', '300'], lib: m('kv-concat', { tAlign: 300, tEarly: 300, permutationSeed: 5 } as MethodOptions) },
  { cmd: 'vary', flags: ['--method', 'style-aligned'], lib: m('style-aligned') },
  { cmd: 'vary', flags: ['--method', 'style-aligned', '--score-scale', '0.5', '--score-shift', '0', '--inversion-offset', '0'], lib: m('style-aligned', { scoreScale: 0.5, scoreShift: 0, inversionOffset: 0 }), vs: ['--method', 'style-aligned'] },
  { cmd: 'vary', flags: ['--method', 'kv-replace', '--start-step', '1', '--start-layer', '2'], lib: m('kv-replace', { startStep: 1, startLayer: 2 }) },
  // Guided inversion of the reference (MasaCtrl / StyleAligned); kv-replace defaults it to --guidance, so indetail-ip shows the flag.
  { cmd: 'vary', flags: ['--inversion-guidance', '3'], lib: () => ({ inversionGuidance: 3 }) },
  { cmd: 'vary', flags: ['--guidance-mode', 'conflicting', '--stratified-steps', '1', '--lambda-p', '2', '--lambda-g', '0.5'], lib: m('indetail-ip', { guidanceMode: 'conflicting', stratifiedSteps: 1, lambdaP: 2, lambdaG: 0.5 }) },
  { cmd: 'vary', flags: [...CN_FLAGS, '--control-uncond-steps', '1'], lib: async () => ({ ...(await controls()), controlUncondSteps: 1 }), vs: CN_FLAGS, covers: ['--control-uncond-steps'] },
  ...samplingRows('vary'),
  sdxlRow('vary'),

  { cmd: 'inject', flags: ['--prompt', 'a dog', '--steps', '5', '--seed', '6', '--noise', 'native', '--t-edit', '600', '--gamma', '0.8', '--omega', '0.5', '--t-noise', '400'],
    // t-noise differs from t-edit (and from its default 200) at these 5 steps, so two flags swapped cannot pass.
    lib: () => ({ prompt: 'a dog', steps: 5, noise: noise(6, 'native'), tEdit: 600, gamma: 0.8, omega: 0.5, tNoise: 400 }) },
  { cmd: 'inject', flags: ['--gamma-ramp', '0.2:0.9', '--mask', MASK], lib: async () => ({ gamma: [0.2, 0.9], mask: await image(MASK) }) },
  // The direction term is scaled only for t >= 950: 20 steps reach t = 951.
  { cmd: 'inject', flags: ['--steps', '20', '--dt-lambda', '0.5'], lib: () => ({ steps: 20, dtLambda: 0.5 }), vs: ['--steps', '20'], covers: ['--dt-lambda'] },
  { cmd: 'inject', flags: ['--vae-tiny', TAESD, '--lora', LORA], open: { vaeTiny: TAESD, loras: [{ path: LORA }] } },
  { cmd: 'inject', flags: ['--precision', 'int8'], open: { precision: 'int8' } },
  { cmd: 'inject', flags: ['--clip-skip', '1'], lib: () => ({ clipSkip: 1 }) },
  { cmd: 'inject', flags: ['--model', SINGLE, '--config', SD15], open: { model: SINGLE, config: SD15 }, same: true, covers: ['--config'] },

  // 5 steps run at t = 801, 601, 401, 201, 1 (4: 751, 501, 251, 1): --t-edit 700 edits at the first only; --t-boost 600 adds noise from 401 on.
  { cmd: 'edit', flags: ['--prompt', 'a dog', '--steps', '5', '--seed', '6', '--noise', 'native', '--strength', '2', '--t-edit', '700', '--t-boost', '600'],
    lib: () => ({ prompt: 'a dog', steps: 5, noise: noise(6, 'native'), strength: 2, tEdit: 700, tBoost: 600 }) },
  { cmd: 'edit', flags: ['--t-edit', '700'], lib: () => ({ tEdit: 700 }) },
  { cmd: 'edit', flags: ['--vae-tiny', TAESD, '--lora', LORA], open: { vaeTiny: TAESD, loras: [{ path: LORA }] } },
  { cmd: 'edit', flags: ['--precision', 'int8'], open: { precision: 'int8' } },
  { cmd: 'edit', flags: ['--clip-skip', '1'], lib: () => ({ clipSkip: 1 }) },
  { cmd: 'edit', flags: ['--model', SINGLE, '--config', SD15], open: { model: SINGLE, config: SD15 }, same: true, covers: ['--config'] },

  { cmd: 'fuse', flags: ['--prompt', 'a photograph of a dog', '--fusion', 'average'], lib: () => ({ prompt: 'a photograph of a dog', fusion: 'average' }) },
  { cmd: 'fuse', flags: ['--fusion', 'cross-attention'], lib: () => ({ fusion: 'cross-attention' }) },
  { cmd: 'fuse', flags: PNO, lib: () => ({ pnoSteps: 1, pnoLr: 0.5, tower: towerOfCLIPModel(CLIPModel.open(CLIP)) }) },
  { cmd: 'fuse', flags: [...PNO, '--no-checkpointing'], lib: () => ({ pnoSteps: 1, pnoLr: 0.5, tower: towerOfCLIPModel(CLIPModel.open(CLIP)), checkpointing: false }), vs: PNO, same: true, sameTol: 1e-3, covers: ['--no-checkpointing'] },
  ...samplingRows('fuse'),
  // PNO's gradient chain has no IP-Adapter: refused rather than optimizing for another model than the one sampling.
  { cmd: 'fuse', flags: [...IPA_FLAGS, ...PNO], error: /error: --ip-adapter with --pno-steps 1: .*--pno-steps 0 or no --ip-adapter/ },
  { cmd: 'fuse', flags: [...CN_FLAGS, ...PNO], error: /error: --controlnet with --pno-steps 1: .*--pno-steps 0 or no --controlnet/ },
  // The aligner is trained for one text-embedding space; on models without a second encoder these are ignored by design.
  { cmd: 'fuse', flags: ['--prompt-2', 'a dog', '--negative-prompt-2', 'ugly', '--original-size', '96x64', '--crop-top-left', '8,4', '--target-size', '96x64'], lib: () => ({}), same: true },
];

/** Flags that do not shape the result (outputs, logging, the base inputs every row has), with why. */
const NOT_RESULT_FLAGS: Record<string, string> = {
  '--model': 'base input of every row (the single-file rows change it)',
  '--image': 'base input of every row that reads an image',
  '--content': 'base input of inject',
  '--attribute': 'base input of edit',
  '--aligner': 'base input of fuse',
  '--out': 'output path',
  '--save-latents': 'output path (the rows read the latents from it)',
  '--save-chain': 'output path (the invert rows read the chain from it)',
  '--quiet': 'logging only',
  '--preview-every': 'side output (preview PNGs); the final result is unchanged, tested in vae-tiny.test',
  '--help': 'commander',
};

interface Result { latents: Tensor; images: RGBImage[] }

interface CliRun { code: number | null; stderr: string; latents?: Tensor; pngs: string[] }

/**
 * ONNX Runtime's optimized graphs, kept on disk between the rows' processes (the CLI's --graph-cache, set by its
 * environment variable): most rows build the same text encoder / UNet / VAE graphs, and a process that finds them
 * skips the optimizer. A folder is used by one running process at a time (two writing the same new graph at once
 * would race), so the at most three processes running together each hold their own; a graph is built once per folder.
 */
const graphCaches: string[] = [];
let graphCacheCount = 0;

/** One CLI process (asynchronous, so the next row's process can start while this row's library call runs). */
function cliRun(cmd: Cmd, flags: string[]): Promise<CliRun> {
  const dir = fs.mkdtempSync(path.join(tmp, `${cmd}-`));
  const lat = path.join(dir, 'o.safetensors');
  const model = flags.includes('--model') ? [] : ['--model', SD15];
  const outs = cmd === 'invert' ? ['--save-chain', lat] : ['--out', path.join(dir, 'o.png'), '--save-latents', lat];
  const graphCache = graphCaches.pop() ?? path.join(tmp, `graph-cache-${graphCacheCount++}`);
  const env = { ...process.env, VISPROMPT_GRAPH_CACHE: graphCache };
  return new Promise((resolve) => {
    execFile(process.execPath, [BIN, cmd, '--quiet', ...model, ...BASE[cmd].flags, ...flags, ...outs], { encoding: 'utf8', timeout: 300_000, maxBuffer: 64 << 20, env }, (err, _stdout, stderr) => {
      graphCaches.push(graphCache);
      const code = err ? (typeof err.code === 'number' ? err.code : null) : 0;
      if (code !== 0) return resolve({ code, stderr, pngs: [] });
      try {
        const t = readAllFloat32(lat);
        const pngs = fs.readdirSync(dir).filter((f) => f.endsWith('.png') && !f.includes('preview')).sort().map((f) => path.join(dir, f));
        resolve({ code: 0, stderr, latents: cmd === 'invert' ? t.chain! : t.latents!, pngs });
      } catch (e) {
        resolve({ code: -1, stderr: `${stderr}\nreading the outputs: ${(e as Error).message}`, pngs: [] });
      }
    });
  });
}

/** CLI runs by command line: a comparison default that is also a row (the no-flag rows, --seed 6, ...) runs once. */
const cliRuns = new Map<string, Promise<CliRun>>();
function cliStarted(cmd: Cmd, flags: string[]): Promise<CliRun> {
  const key = [cmd, ...flags].join('\0');
  if (!cliRuns.has(key)) cliRuns.set(key, cliRun(cmd, flags));
  return cliRuns.get(key)!;
}

async function cliResult(cmd: Cmd, flags: string[], run: Promise<CliRun> = cliStarted(cmd, flags)): Promise<Result> {
  const r = await run;
  assert.equal(r.code, 0, `visprompt ${cmd} ${flags.join(' ')}:\n${r.stderr}`);
  return { latents: r.latents!, images: await Promise.all(r.pngs.map(image)) };
}

const checkpoints = new Map<string, Checkpoint>();
function open(o: Open = {}): Checkpoint {
  const key = JSON.stringify(o);
  let ck = checkpoints.get(key);
  if (!ck) {
    ck = openCheckpoint(o.model ?? SD15, { ...(o.config ? { config: o.config } : {}), ...(o.loras ? { loras: o.loras } : {}), ...(o.precision ? { precision: o.precision } : {}) });
    if (o.vaeTiny) useTinyVae(ck, o.vaeTiny);
    checkpoints.set(key, ck);
  }
  return ck;
}

/** The library call a command makes, with the row's options over the base ones. */
async function libResult(cmd: Cmd, row: Row): Promise<Result> {
  const ck = open(row.open);
  const o = { ...(await BASE[cmd].lib()), ...(row.lib ? await row.lib() : {}) } as Opts & Record<string, never>;
  switch (cmd) {
    case 'generate': return textToImage(ck, o as never);
    case 'invert': {
      const inv = await invert(ck, o.image as RGBImage, o as never);
      const chain = concatRows(inv.chain);
      return { latents: { shape: [chain.shape[0]!, 1, ...chain.shape.slice(1)], data: chain.data }, images: [] };
    }
    case 'vary': {
      const { methodName, methodOptions, ...rest } = o as Opts;
      const steps = (rest.steps as number) ?? 2;
      const method = createMethod((methodName as string | undefined) ?? 'indetail-ip', steps, { ...(methodOptions as MethodOptions | undefined), controlnet: Array.isArray(rest.controls) && rest.controls.length > 0 });
      return vary(ck, { ...rest, method } as never);
    }
    case 'inject': return inject(ck, o as never);
    case 'edit': return edit(ck, o as never);
    case 'fuse': return fuseGenerate(ck, o as never);
  }
}

function imageDiff(a: RGBImage[], b: RGBImage[]): number {
  if (a.length !== b.length) return Infinity;
  let worst = 0;
  a.forEach((im, i) => {
    if (im.width !== b[i]!.width || im.height !== b[i]!.height) worst = Infinity;
    else for (let j = 0; j < im.data.length; j++) worst = Math.max(worst, Math.abs(im.data[j]! - b[i]!.data[j]!));
  });
  return worst;
}
const latentDiff = (a: Tensor, b: Tensor): number => (a.shape.join() === b.shape.join() ? maxAbsDiff(a, b) : Infinity);

/**
 * Reproducibility: each written PNG's `parameters` chunk records every flag of the command line (the base's
 * and the row's) with the value given, so a result flag added later without being recorded fails here.
 * Key: the snake_case of the flag's attribute (`--no-checkpointing` -> checkpointing: false); a repeated
 * flag (or a list value) must hold every value given, any other the last one.
 */
function checkParametersChunk(row: Row, pngs: string[]): void {
  const args = [...BASE[row.cmd].flags, ...row.flags];
  const given = new Map<string, (string | undefined)[]>();
  for (const [i, a] of args.entries()) {
    if (!a.startsWith('--')) continue;
    const next = args[i + 1];
    given.set(a, [...(given.get(a) ?? []), next !== undefined && !next.startsWith('--') ? next : undefined]);
  }
  const same = (r: unknown, g: string): boolean => String(r) === g || (typeof r === 'number' && r === Number(g));
  assert.ok(pngs.length > 0, 'no PNG written');
  for (const png of pngs) {
    const chunk = JSON.parse(readPNGText(png).parameters ?? 'null') as Record<string, unknown> | null;
    assert.ok(chunk, `${path.basename(png)}: no parameters chunk`);
    for (const [flag, values] of given) {
      const key = snakeKey(attributeName(values[0] === undefined ? flag : `${flag} <v>`));
      assert.ok(key in chunk, `${flag}: not recorded in the PNG parameters chunk (no key ${key})`);
      const rec: unknown = chunk[key];
      // The seed is recorded only when the run drew from it (--latents gives the initial noise).
      if (key === 'seed' && rec === null && given.has('--latents')) continue;
      if (values[0] === undefined) assert.equal(rec, !flag.startsWith('--no-'), `${flag}: recorded ${key} = ${JSON.stringify(rec)}`);
      else if (Array.isArray(rec)) for (const v of values) assert.ok(rec.some((r) => same(r, v!)), `${flag} ${v}: recorded ${key} = ${JSON.stringify(rec)}`);
      else assert.ok(same(rec, values[values.length - 1]!), `${flag} ${values[values.length - 1]}: recorded ${key} = ${JSON.stringify(rec)}`);
    }
  }
}

const flagsOf = (r: Row): string[] => r.covers ?? r.flags.filter((f) => f.startsWith('--'));

test('every flag of every command reaches the library call: CLI result = library result, and differs from the default', async (t) => {
  const defaults = new Map<string, Promise<Result>>();
  const defaultOf = (cmd: Cmd, vs: string[]): Promise<Result> => {
    const key = `${cmd} ${vs.join(' ')}`;
    if (!defaults.has(key)) defaults.set(key, cliResult(cmd, vs));
    return defaults.get(key)!;
  };
  // VP_WIRING_ONLY=<regex> runs the matching rows only (debugging one command or flag).
  const only = process.env.VP_WIRING_ONLY ? new RegExp(process.env.VP_WIRING_ONLY) : undefined;
  const nameOf = (row: Row): string => `${row.cmd} ${row.flags.map((f) => (f.includes('/') ? path.basename(f) : f)).join(' ')}`;
  const rows = ROWS.filter((row) => !only || only.test(nameOf(row)));
  // Each row's CLI process starts while the previous row is checked (two at a time: one per core).
  const started = (row: Row): Promise<CliRun> => cliStarted(row.cmd, row.flags);
  for (const [i, row] of rows.entries()) {
    const name = nameOf(row);
    const run = started(row);
    if (rows[i + 1]) void started(rows[i + 1]!);
    await t.test(name, async () => {
      if (row.error) {
        const r = await run;
        assert.notEqual(r.code, 0, `${name}: accepted, but the command cannot honour it`);
        assert.match(r.stderr, row.error);
        assert.doesNotMatch(r.stderr, /\n\s+at .+:\d+:\d+/, 'stack trace');
        return;
      }
      const cli = await cliResult(row.cmd, row.flags, run);
      if (row.cmd !== 'invert') checkParametersChunk(row, (await run).pngs);
      const lib = await libResult(row.cmd, row);
      const dl = latentDiff(cli.latents, lib.latents), di = row.cmd === 'invert' ? 0 : imageDiff(cli.images, lib.images);
      assert.ok(dl <= 1e-5 && di <= 1, `${name}: CLI and library differ (latents ${dl}, images ${di})`);
      const def = await defaultOf(row.cmd, row.vs ?? (row.open?.model === SDXL ? ['--model', SDXL] : []));
      const moved = Math.max(latentDiff(cli.latents, def.latents), row.cmd === 'invert' ? 0 : imageDiff(cli.images, def.images));
      const [sl, si] = [latentDiff(cli.latents, def.latents), row.cmd === 'invert' ? 0 : imageDiff(cli.images, def.images)];
      if (row.same) assert.ok(sl <= (row.sameTol ?? 1e-5) && si <= (row.sameTol ? 2 : 1), `${name}: should equal the default, moved latents ${sl}, images ${si}`);
      else assert.ok(moved > 1e-4, `${name}: the result did not change (max diff ${moved}): the flag is not passed on`);
    });
  }
});

test('every flag in every command\'s --help has a wiring row (or is listed as not shaping the result)', () => {
  const covered = new Set(ROWS.flatMap((r) => flagsOf(r).map((f) => `${r.cmd} ${f}`)));
  const missing: string[] = [];
  for (const cmd of Object.keys(BASE) as Cmd[]) {
    const help = spawnSync(process.execPath, [BIN, cmd, '--help'], { encoding: 'utf8' }).stdout;
    for (const [, flag] of help.matchAll(/^\s+(?:-\w, )?(--[a-z0-9-]+)/gm)) {
      if (!(flag! in NOT_RESULT_FLAGS) && !covered.has(`${cmd} ${flag}`)) missing.push(`${cmd} ${flag}`);
    }
  }
  assert.deepEqual(missing, [], 'flags without a row in test/cli-wiring.test.ts ROWS');
});
