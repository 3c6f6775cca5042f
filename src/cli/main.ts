#!/usr/bin/env node
/**
 * The visprompt command line. User mistakes (bad flags, bad files) print one `error:` line and exit 1;
 * anything else is a bug and prints its stack.
 */
import { Command, CommanderError, Option } from 'commander';
import { configureEngine, type Device } from '../graph/session.js';
import { InputError, VispromptError } from '../errors.js';
import { PRECISIONS, type Precision } from '../graph/quantize.js';
import { choice, int } from './parse.js';
import { int8Notice } from './precision-notice.js';
import { registerEncoderCommands } from './commands/encoders.js';
import { registerGenerateCommands } from './commands/generate.js';
import { registerVaryCommand } from './commands/vary.js';
import { registerHSpaceCommands } from './commands/hspace.js';
import { registerTrainCommands } from './commands/train.js';
import { registerFuseCommand } from './commands/fuse.js';
import { registerInspectCommand } from './commands/inspect.js';
import { registerServeCommands } from './commands/serve.js';
import { registerEvalCommand } from './commands/eval.js';
import { registerBenchmarkCommand } from './commands/benchmark.js';
import { parseLoraSpec, type LoraSpec } from '../adapters/lora/lora-set.js';

export interface GlobalOptions {
  quiet: boolean;
  device: Device;
  threads?: number;
  sdVersion?: 1 | 2;
  predictionType?: 'epsilon' | 'v_prediction';
  graphCache?: string;
  /** --config DIR: a diffusers folder whose configs a single-file --model is opened with. */
  config?: string;
  /** --lora FILE[:SCALE] of the sampling commands, merged into the model when it is opened. */
  loras?: LoraSpec[];
  /** --precision: fp32 (exact) or int8 (UNet, ControlNets and VAE quantized; an approximation). */
  precision?: Precision;
}

const program = new Command();
program.name('visprompt')
  .description('Stable Diffusion in Node.js, steered by image prompts as well as text')
  .version('0.1.0')
  .addOption(new Option('--quiet', 'no progress bars').default(false))
  .addOption(new Option('--device <device>', 'execution device: cpu, webgpu or cuda').argParser(choice('--device', ['cpu', 'webgpu', 'cuda'] as const)).default('cpu'))
  .addOption(new Option('--threads <n>', 'threads per operator (default: all cores)').argParser(int('--threads', 1, 1024)))
  .addOption(new Option('--sd-version <v>', 'single-file checkpoints: 1 or 2 (default: inferred from the weights)').argParser((v) => Number(choice('--sd-version', ['1', '2'] as const)(v)) as 1 | 2))
  .addOption(new Option('--prediction-type <type>', 'single-file checkpoints: epsilon or v_prediction (SD 2.x 768 models; default epsilon)').argParser(choice('--prediction-type', ['epsilon', 'v_prediction'] as const)))
  .addOption(new Option('--config <dir>', 'single-file checkpoints: take the unet/vae/text_encoder configs, scheduler and tokenizer from this diffusers folder (as diffusers\' from_single_file(config=...))'))
  .addOption(new Option('--graph-cache <dir>', 'keep ONNX Runtime\'s optimized graphs (with a copy of their weights) here for later runs').env('VISPROMPT_GRAPH_CACHE'))
  .addOption(precisionOption())
  .enablePositionalOptions(false)
  .exitOverride()
  .configureOutput({ writeErr: (s) => process.stderr.write(s) });

// Sub-commands accept --quiet too (contract scripts put it after the command).
let quiet = false;
let loras: LoraSpec[] = [];
let config: string | undefined;
let precision: Precision = 'fp32';
const globals = (): GlobalOptions => ({ ...program.opts<GlobalOptions>(), quiet, loras, config, precision });
program.hook('preAction', (_root, cmd) => {
  const o = program.opts<GlobalOptions>();
  quiet = Boolean(o.quiet || cmd.opts<Partial<GlobalOptions>>().quiet);
  loras = cmd.opts<{ lora?: LoraSpec[] }>().lora ?? [];
  config = cmd.opts<{ config?: string }>().config ?? o.config;
  // --precision before or after the command (the command's own flag wins when given)
  precision = cmd.getOptionValueSource('precision') === 'cli' ? cmd.opts<{ precision: Precision }>().precision : o.precision ?? 'fp32';
  if (precision === 'int8' && o.device !== 'cpu') throw new InputError(`--precision int8 runs on --device cpu only (the ${o.device} provider has no dynamically quantized kernels)`);
  // where int8 does not reach (gradients, encoders, services): said, never a silent float32 run (serve/worker even with --quiet)
  const notice = precision === 'int8' ? int8Notice(cmd.parent?.parent ? `${cmd.parent.name()} ${cmd.name()}` : cmd.name(), cmd.opts<{ pnoSteps?: number }>()) : undefined;
  if (notice && (!quiet || ['serve', 'worker'].includes(cmd.name()))) process.stderr.write(`warning: ${notice}\n`);
  configureEngine({ device: o.device, threads: o.threads, lowMemory: true, graphCache: o.graphCache });
});

registerEncoderCommands(program, globals);
registerGenerateCommands(program, globals);
registerVaryCommand(program, globals);
registerHSpaceCommands(program, globals);
registerTrainCommands(program, globals);
registerFuseCommand(program, globals);
registerInspectCommand(program);
registerServeCommands(program, globals);
registerEvalCommand(program, globals);
registerBenchmarkCommand(program, globals);
for (const cmd of program.commands) {
  cmd.addOption(new Option('--quiet', 'no progress bars').default(false)).exitOverride();
  cmd.addOption(precisionOption());
  // Every command that samples with the model takes LoRAs (merged into the text encoder(s) and UNet).
  if (['generate', 'vary', 'invert', 'inject', 'edit', 'fuse'].includes(cmd.name())) {
    cmd.addOption(new Option('--config <dir>', 'single-file --model: configs, scheduler and tokenizer from this diffusers folder'));
    cmd.addOption(new Option('--lora <file[:scale]>', 'LoRA file (kohya/A1111 or diffusers/PEFT) and its scale (default 1); repeatable, the terms add up')
      .argParser((v: string, prev: LoraSpec[] = []) => [...prev, parseLoraSpec(v)]));
  }
}

/** --precision, global and on every command (the UNet, ControlNets and VAE of the model the command opens). */
function precisionOption(): Option {
  return new Option('--precision <p>', 'fp32 (exact) or int8: UNet, ControlNet and VAE encoder weights quantized per channel, activations at run time (faster on CPUs with int8 matrix instructions; an approximation); the VAE decoder, text and image encoders stay float32')
    .argParser(choice('--precision', PRECISIONS)).default('fp32');
}

function isUserError(e: unknown): boolean {
  return e instanceof VispromptError || (e instanceof Error && /^(VispromptError|FileFormatError|InputError)$/.test(e.name));
}

try {
  await program.parseAsync(process.argv);
} catch (e) {
  if (e instanceof CommanderError) process.exit(e.exitCode === 0 ? 0 : 2);
  if (isUserError(e)) {
    process.stderr.write(`\nerror: ${(e as Error).message}\n`);
    process.exit(1);
  }
  throw e;
}
