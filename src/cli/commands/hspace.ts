/** `inject` (InjectFusion content injection) and `edit` (Asyrp attribute editing) in h-space. */
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { readImageRGB } from '../../io/image.js';
import { createNoise, NOISE_KINDS, type NoiseKind } from '../../noise/gaussian.js';
import { edit } from '../../pipelines/edit.js';
import { inject } from '../../pipelines/inject.js';
import type { GeneratedImages } from '../../pipelines/common.js';
import { choice, float, int, seed } from '../parse.js';
import { saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { openModel } from '../model.js';
import { ProgressReporter } from '../progress.js';

function ramp(v: string): [number, number] {
  const m = /^\s*([-+.\deE]+)\s*:\s*([-+.\deE]+)\s*$/.exec(v);
  const a = Number(m?.[1]), b = Number(m?.[2]);
  if (!m || !Number.isFinite(a) || !Number.isFinite(b)) throw new InputError(`--gamma-ramp must look like A:B (e.g. 0.3:0.7), got ${JSON.stringify(v)}`);
  return [a, b];
}

interface Common { model: string; prompt?: string; steps: number; seed?: number | bigint; noise: NoiseKind; saveLatents?: string; vaeTiny?: string; out: string }

async function finish(o: Common, r: GeneratedImages, progress: ProgressReporter, params: Record<string, unknown>, quiet: boolean): Promise<void> {
  if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
  const files = await writeImages(o.out, r.images, { ...params, prompt: o.prompt ?? null, steps: o.steps, model: o.model });
  progress.done();
  if (!quiet) process.stderr.write(`wrote ${files.join(', ')}\n`);
}

function common(cmd: Command): Command {
  return cmd
    .requiredOption('--model <path>', 'Stable Diffusion checkpoint or pixel-space DDPM (UNet2DModel) folder')
    .option('--prompt <text>', 'text conditioning for Stable Diffusion models (inversion and generation; default "")')
    .option('--steps <n>', 'DDIM steps (inversion and generation)', int('--steps', 1, 1000), 50)
    .option('--seed <s>', 'seed for the stochastic steps (default: random)', seed)
    .option('--noise <kind>', 'noise generator: torch or native', choice('--noise', NOISE_KINDS), 'torch')
    .option('--save-latents <file>', 'write the final latents / sample (key "latents")')
    .option('--vae-tiny <dir>', 'encode and decode with this tiny VAE (TAESD folder) instead of the model\'s VAE')
    .requiredOption('--out <file.png>', 'output image');
}

export function registerHSpaceCommands(program: Command, globals: () => GlobalOptions): void {
  common(program.command('inject').description('InjectFusion: inject the content image\'s h-space into the original image\'s generative process (DDIM inversion and DDIM sampling, as the method\'s code)'))
    .requiredOption('--image <file>', 'the original image (its x_T and skip connections are kept)')
    .requiredOption('--content <file>', 'the content image (its h-space is injected)')
    .option('--t-edit <t>', 'inject at timesteps t >= T', int('--t-edit'), 400)
    .option('--gamma <x>', 'slerp weight of the content h (0: none, 1: all)', float('--gamma', 0, 1))
    .option('--gamma-ramp <a:b>', 'gamma ramped linearly from a (first injected step) to b (last)', ramp)
    .option('--omega <w>', 'style calibration strength (0: off)', float('--omega'), 0)
    .option('--mask <file>', 'image whose white area restricts the injection (resized to the h-space grid)')
    .option('--t-noise <t>', 'eta 0 above this timestep, 1 at and below', int('--t-noise'), 200)
    .option('--dt-lambda <x>', 'scale of the direction term for t >= 950 while injecting', float('--dt-lambda', 0), 0.9985)
    .action(async (o: Common & { image: string; content: string; tEdit: number; gamma?: number; gammaRamp?: [number, number]; omega: number; mask?: string; tNoise: number; dtLambda: number }) => {
      if (o.gamma !== undefined && o.gammaRamp) throw new InputError('give --gamma or --gamma-ramp, not both');
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals(), o);
      const s = o.seed ?? Math.floor(Math.random() * 2 ** 32);
      const r = await inject(ck, {
        original: await readImageRGB(o.image), content: await readImageRGB(o.content), prompt: o.prompt, steps: o.steps, tEdit: o.tEdit,
        gamma: o.gammaRamp ?? o.gamma ?? 0.5, omega: o.omega, mask: o.mask ? await readImageRGB(o.mask) : undefined, tNoise: o.tNoise,
        dtLambda: o.dtLambda, noise: createNoise(o.noise, s), onProgress: progress.onProgress, onWarning: (m) => progress.warn(m),
      });
      await finish(o, r, progress, { method: 'injectfusion', image: o.image, content: o.content, t_edit: o.tEdit, gamma: o.gammaRamp ?? o.gamma ?? 0.5, omega: o.omega, seed: String(s) }, globals().quiet);
    });

  common(program.command('edit').description('Asyrp: edit an image with an attribute network (DeltaBlock) in h-space (DDIM inversion and DDIM sampling, as the method\'s code)'))
    .requiredOption('--image <file>', 'the image to edit')
    .requiredOption('--attribute <file.safetensors>', 'attribute network weights (DeltaBlock)')
    .option('--strength <c>', 'edit strength c in h\' = h + c dh', float('--strength'), 1)
    .option('--t-edit <t>', 'edit at timesteps t >= T', int('--t-edit'), 500)
    .option('--t-boost <t>', 'stochastic (eta 1) below this timestep', int('--t-boost'), 200)
    .action(async (o: Common & { image: string; attribute: string; strength: number; tEdit: number; tBoost: number }) => {
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals(), o);
      const s = o.seed ?? Math.floor(Math.random() * 2 ** 32);
      const r = await edit(ck, {
        image: await readImageRGB(o.image), attribute: o.attribute, prompt: o.prompt, steps: o.steps, strength: o.strength, tEdit: o.tEdit,
        tBoost: o.tBoost, noise: createNoise(o.noise, s), onProgress: progress.onProgress, onWarning: (m) => progress.warn(m),
      });
      await finish(o, r, progress, { method: 'asyrp', image: o.image, attribute: o.attribute, strength: o.strength, t_edit: o.tEdit, t_boost: o.tBoost, seed: String(s) }, globals().quiet);
    });
}
