/** `vary`: images from a reference image (and optional text) with a training-free image-prompt method. */
import type { Command } from 'commander';
import { openModel } from '../model.js';
import { readImageRGB } from '../../io/image.js';
import { createMethod, type GuidanceMode } from '../../methods/index.js';
import { vary } from '../../pipelines/vary.js';
import { loadTensor, saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { ProgressReporter } from '../progress.js';
import { PreviewWriter } from '../previews.js';
import { parametersChunk } from '../png-parameters.js';
import { microFrom } from '../conditioning-flags.js';
import { controlsFrom, noiseFor, requireDdim, type SamplingFlags } from './generate.js';
import { ipAdapterParameters, ipAdaptersFrom, type IPAdapterFlags } from '../ip-adapter-flags.js';
import { VARY_OPTIONS } from '../../params/job-options.js';
import { addOptions } from '../../params/option-spec.js';

interface VaryFlags extends Omit<SamplingFlags, 'prompt'>, IPAdapterFlags {
  image: string;
  /** Repeatable: one generated image per prompt (StyleAligned's prompt list). */
  prompt?: string[];
  inversionPrompt?: string;
  inversionGuidance?: number;
  method: string;
  guidanceMode?: GuidanceMode;
  stratifiedSteps?: number;
  lambdaP: number;
  lambdaG: number;
  tAlign?: number;
  tEarly?: number;
  startStep?: number;
  startLayer?: number;
  scoreScale?: number;
  scoreShift?: number;
  inversionOffset?: number;
  controlUncondSteps?: number;
  clipSkip?: number;
  previewEvery?: number;
}

export function registerVaryCommand(program: Command, globals: () => GlobalOptions): void {
  addOptions(program.command('vary').description('generate from a reference image: image variation (prompt = a caption of it) or cross-prompt generation (--inversion-prompt "")'), VARY_OPTIONS)
    .action(async (o: VaryFlags) => {
      const progress = new ProgressReporter(globals().quiet);
      const controls = await controlsFrom({ ...o, prompt: o.prompt?.[0] });
      const { seed: s, noise } = noiseFor(o);
      // RIVAL's permutation is torch.randperm(h*w) right after torch.manual_seed(seed) (with --noise torch).
      const method = createMethod(o.method, o.steps, { ...o, controlnet: controls.length > 0, ...(o.noise === 'torch' ? { permutationSeed: s } : {}) });
      const prompts = o.prompt && o.prompt.length > 1 ? o.prompt : undefined;
      const prompt = o.prompt?.[0] ?? o.inversionPrompt ?? '';
      requireDdim(o, 'vary');
      const ck = openModel(o.model, globals(), o);
      const previews = new PreviewWriter(o.out);
      const reference = await readImageRGB(o.image);
      const r = await vary(ck, {
        reference, method, prompt, prompts, inversionPrompt: o.inversionPrompt ?? prompt, inversionGuidance: o.inversionGuidance, negativePrompt: o.negativePrompt, steps: o.steps,
        prompt2: o.prompt2, negativePrompt2: o.negativePrompt2, micro: microFrom(o), clipSkip: o.clipSkip,
        guidance: o.guidance, numImages: o.numImages, width: o.width, height: o.height,
        latents: o.latents ? loadTensor(o.latents, 'latents') : undefined, noise,
        controls, controlUncondSteps: o.controlUncondSteps, ipAdapters: await ipAdaptersFrom(o), imageEncoder: o.imageEncoder, onProgress: previews.listener(progress.onProgress), onWarning: (m) => progress.warn(m),
        preview: o.previewEvery ? { every: o.previewEvery, decoder: o.vaeTiny !== undefined ? ck.autoencoder() : undefined } : undefined,
      });
      for (const p of r.truncatedPrompts) progress.warn(`prompt longer than 77 tokens was truncated: ${JSON.stringify(p.slice(0, 60))}...`);
      if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
      const files = await writeImages(o.out, r.images, parametersChunk(VARY_OPTIONS, o, globals(), {
        method: method.name, guidance_mode: method.guidanceMode, reference: o.image, prompt: prompts ?? prompt, inversion_prompt: o.inversionPrompt ?? prompt,
        negative_prompt: o.negativePrompt ?? '', steps: o.steps, guidance: o.guidance, seed: o.latents ? null : String(s), noise: o.noise, model: o.model, ...ipAdapterParameters(o),
      }));
      const previewFiles = await previews.flush();
      progress.done();
      if (!globals().quiet) process.stderr.write(`wrote ${files.join(', ')}${previewFiles.length ? ` and ${previewFiles.length} previews` : ''}\n`);
    });
}
