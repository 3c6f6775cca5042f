/** `generate` (text-to-image) and `invert` (DDIM inversion). */
import type { Command } from 'commander';
import { openModel } from '../model.js';
import { readImageRGB } from '../../io/image.js';
import { ControlNet, type ControlInput } from '../../components/controlnet.js';
import { InputError } from '../../errors.js';
import { createNoise, type NoiseKind, type NoiseSource } from '../../noise/gaussian.js';
import { invert } from '../../pipelines/invert.js';
import { textToImage } from '../../pipelines/text-to-image.js';
import { concatRows } from '../../tensor.js';
import { schedulerNameForClass } from '../../schedulers/index.js';
import { loadTensor, saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { ProgressReporter } from '../progress.js';
import { conditioningFrom, microFrom, type ConditioningFlags } from '../conditioning-flags.js';
import { ipAdapterParameters, ipAdaptersFrom, type IPAdapterFlags } from '../ip-adapter-flags.js';
import { GENERATE_OPTIONS, INVERT_OPTIONS, SAMPLING_OPTIONS } from '../../params/job-options.js';
import { addOptions } from '../../params/option-spec.js';
import { PreviewWriter } from '../previews.js';
import { parametersChunk } from '../png-parameters.js';

export interface SamplingFlags extends ConditioningFlags {
  model: string;
  prompt?: string;
  negativePrompt?: string;
  steps: number;
  guidance: number;
  width?: number;
  height?: number;
  numImages: number;
  seed?: number | bigint;
  noise: NoiseKind;
  latents?: string;
  scheduler?: string;
  timestepSpacing?: string;
  eta: number;
  saveLatents?: string;
  vaeTiny?: string;
  out: string;
  controlnet: string[];
  controlImage: string[];
  controlScale: number[];
}

/** The --controlnet / --control-image / --control-scale triples (repeatable, matched by position). */
export async function controlsFrom(o: SamplingFlags): Promise<ControlInput[]> {
  const n = o.controlnet.length;
  if (o.controlImage.length !== n) throw new InputError(`${n} --controlnet but ${o.controlImage.length} --control-image: give one condition image per ControlNet`);
  if (o.controlScale.length !== 0 && o.controlScale.length !== n) throw new InputError(`${o.controlScale.length} --control-scale for ${n} --controlnet: give none (1.0 each) or one per ControlNet`);
  const out: ControlInput[] = [];
  for (let j = 0; j < n; j++) out.push({ net: ControlNet.open(o.controlnet[j]!), image: await readImageRGB(o.controlImage[j]!), scale: o.controlScale[j] ?? 1 });
  return out;
}

/** Flags shared by every sampling command (generate, vary, ...): defined once in params/job-options.ts. */
export function addSamplingFlags(cmd: Command, _defaults?: { steps: 50; guidance: 7.5 }): Command {
  return addOptions(cmd, SAMPLING_OPTIONS);
}

/** Commands whose methods sample with DDIM only (their official code does): any other --scheduler is an error. */
export function requireDdim(o: { scheduler?: string; timestepSpacing?: string; eta?: number }, command: string): void {
  if (o.scheduler !== undefined && o.scheduler !== 'ddim') throw new InputError(`--scheduler ${o.scheduler}: ${command} samples with ddim only (as its method's official code); omit --scheduler or pass ddim`);
  // Accepted by the shared sampling flags but not used by these pipelines: refuse rather than ignore.
  if (o.timestepSpacing !== undefined) throw new InputError(`--timestep-spacing ${o.timestepSpacing}: ${command} samples on the model's own DDIM timesteps; omit --timestep-spacing`);
  if (o.eta !== undefined && o.eta !== 0) throw new InputError(`--eta ${o.eta}: ${command} samples with DDIM eta 0 (as its method's official code); omit --eta`);
}

export function noiseFor(o: { seed?: number | bigint; noise: NoiseKind }): { seed: number | bigint; noise: ReturnType<typeof createNoise> } {
  const s = o.seed ?? Math.floor(Math.random() * 2 ** 32);
  return { seed: s, noise: createNoise(o.noise, s) };
}

export function registerGenerateCommands(program: Command, globals: () => GlobalOptions): void {
  addOptions(program.command('generate').description('text-to-image with classifier-free guidance (or unconditional sampling of a pixel-space DDPM model)'), GENERATE_OPTIONS)
    .action(async (o: SamplingFlags & IPAdapterFlags & { prompt?: string; clipSkip?: number; previewEvery?: number }) => {
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals(), o);
      const previews = new PreviewWriter(o.out);
      if (ck.isPixelSpace() && o.prompt !== undefined) progress.warn('this is an unconditional pixel-space model: --prompt is ignored');
      if (!ck.isPixelSpace() && o.prompt === undefined) throw new InputError('--prompt is required for text-conditioned models');
      const { seed: s, noise: source } = noiseFor(o);
      // the seed is recorded when the run drew from it (initial noise, or a stochastic scheduler's step noise)
      const draws = { n: 0 };
      const noise: NoiseSource = { randn: (shape) => { draws.n++; return source.randn(shape); } };
      const r = await textToImage(ck, {
        prompt: o.prompt ?? '', negativePrompt: o.negativePrompt, steps: o.steps, guidance: o.guidance, width: o.width, height: o.height,
        numImages: o.numImages, latents: o.latents ? loadTensor(o.latents, 'latents') : undefined, noise, scheduler: o.scheduler, timestepSpacing: o.timestepSpacing, eta: o.eta,
        clipSkip: o.clipSkip, ...conditioningFrom(o), controls: await controlsFrom(o), ipAdapters: await ipAdaptersFrom(o), imageEncoder: o.imageEncoder, onProgress: previews.listener(progress.onProgress),
        preview: o.previewEvery ? { every: o.previewEvery, decoder: o.vaeTiny !== undefined ? ck.autoencoder() : undefined } : undefined,
      });
      for (const p of r.truncatedPrompts) progress.warn(`prompt longer than 77 tokens was truncated: ${JSON.stringify(p.slice(0, 60))}...`);
      if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
      const files = await writeImages(o.out, r.images, parametersChunk(GENERATE_OPTIONS, o, globals(), {
        prompt: o.prompt ?? null, negative_prompt: o.negativePrompt ?? '', steps: o.steps, guidance: o.guidance, seed: draws.n > 0 ? String(s) : null, noise: o.noise,
        scheduler: o.scheduler ?? schedulerNameForClass(String(ck.schedulerConfig().raw._class_name)) ?? null, timestep_spacing: o.timestepSpacing ?? null, eta: o.eta, width: r.images[0]!.width, height: r.images[0]!.height, model: o.model, ...ipAdapterParameters(o),
      }));
      const previewFiles = await previews.flush();
      progress.done();
      if (!globals().quiet) process.stderr.write(`wrote ${files.join(', ')}${previewFiles.length ? ` and ${previewFiles.length} previews` : ''}\n`);
    });

  addOptions(program.command('invert').description('DDIM inversion of an image: writes the chain z_0 .. z_N (key "chain", [N+1, 1, C, h, w])'), INVERT_OPTIONS)
    .action(async (o: { model: string; image: string; prompt: string; steps: number; guidance?: number; clipSkip?: number; width?: number; height?: number; saveChain: string; vaeTiny?: string; scheduler?: string }) => {
      requireDdim(o, 'invert');
      const progress = new ProgressReporter(globals().quiet);
      const ck = openModel(o.model, globals(), o);
      const inv = await invert(ck, await readImageRGB(o.image), { prompt: o.prompt, prompt2: (o as ConditioningFlags).prompt2, micro: microFrom(o as ConditioningFlags), clipSkip: o.clipSkip, steps: o.steps, guidance: o.guidance, width: o.width, height: o.height, onProgress: progress.onProgress });
      const chain = concatRows(inv.chain);
      saveTensors(o.saveChain, { chain: { shape: [chain.shape[0]!, 1, ...chain.shape.slice(1)], data: chain.data } }, { timesteps: JSON.stringify(inv.timesteps), prompt: o.prompt });
      progress.done();
    });
}
