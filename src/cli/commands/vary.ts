/** `vary`: images from a reference image (and optional text) with a training-free image-prompt method. */
import type { Command } from 'commander';
import { openModel } from '../model.js';
import { readImageRGB } from '../../io/image.js';
import { createMethod, GUIDANCE_MODES, METHOD_NAMES, type GuidanceMode } from '../../methods/index.js';
import { vary } from '../../pipelines/vary.js';
import { choice, float, int } from '../parse.js';
import { loadTensor, saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { ProgressReporter } from '../progress.js';
import { PreviewWriter } from '../previews.js';
import { microFrom } from '../conditioning-flags.js';
import { addSamplingFlags, controlsFrom, noiseFor, requireDdim, type SamplingFlags } from './generate.js';
import { addIPAdapterFlags, ipAdapterParameters, ipAdaptersFrom, type IPAdapterFlags } from '../ip-adapter-flags.js';

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
  previewEvery?: number;
}

export function registerVaryCommand(program: Command, globals: () => GlobalOptions): void {
  addIPAdapterFlags(addSamplingFlags(program.command('vary').description('generate from a reference image: image variation (prompt = a caption of it) or cross-prompt generation (--inversion-prompt "")'), { steps: 50, guidance: 7.5 }))
    .requiredOption('--image <file>', 'the reference image (image prompt)')
    .option('--prompt <text>', 'text prompt (default: the inversion prompt); repeat it for one image per prompt (StyleAligned\'s prompt list)', (v: string, prev?: string[]) => [...(prev ?? []), v])
    .option('--inversion-prompt <text>', 'caption used to invert the reference ("" for cross-prompt generation; default: the prompt)')
    .option('--inversion-guidance <g>', 'classifier-free guidance of the reference\'s DDIM inversion (> 1: uncond + g (cond - uncond); default: none, kv-replace: --guidance as official MasaCtrl)', float('--inversion-guidance'))
    .option('--method <name>', `image-prompt method: ${METHOD_NAMES.join(', ')}`, choice('--method', METHOD_NAMES), 'indetail-ip')
    .option('--guidance-mode <mode>', 'conflict-free (reference only in the conditional branch; default for indetail-ip) or conflicting (both branches; default for the baselines)', choice('--guidance-mode', GUIDANCE_MODES))
    .option('--stratified-steps <s>', 'InDetail-IP: steps with Stratified Attention (default 10 of 50, scaled to --steps)', int('--stratified-steps', 0))
    .option('--lambda-p <x>', 'InDetail-IP: weight of the image-prompt attention', float('--lambda-p', 0), 1)
    .option('--lambda-g <y>', 'InDetail-IP: weight of the generated image\'s own attention', float('--lambda-g', 0), 1)
    .option('--t-align <t>', 'kv-concat (RIVAL): reference-only K/V above this timestep', int('--t-align', 0, 1000))
    .option('--t-early <t>', 'kv-concat (RIVAL): AdaIN of the guided noise to the reference\'s above this timestep (default 600)', int('--t-early', 0, 1000))
    .option('--start-step <n>', 'kv-replace (MasaCtrl): first step that replaces K/V', int('--start-step', 0))
    .option('--start-layer <n>', 'kv-replace (MasaCtrl): first self-attention layer (forward order) that replaces K/V', int('--start-layer', 0))
    .option('--score-scale <x>', 'style-aligned (StyleAligned): shared_score_scale, multiplies the reference keys (default 1)', float('--score-scale'))
    .option('--score-shift <y>', 'style-aligned (StyleAligned): shared_score_shift, added to the reference logits (default log 2 = 0.693)', float('--score-shift'))
    .option('--inversion-offset <n>', 'style-aligned (StyleAligned): the reference row starts from the inversion chain\'s zts[n] (most noisy first) and is pinned to zts[max(n+1, i+1)] after step i (default steps/10, at least 2)', int('--inversion-offset', 0))
    .option('--control-uncond-steps <n>', 'with --controlnet: first steps whose unconditional branch gets no ControlNet residuals (default 10 of 50, scaled)', int('--control-uncond-steps', 0))
    .option('--preview-every <n>', 'every n steps write OUT.preview-stepNNN.png: the predicted final image, decoded by --vae-tiny (else a latent-size linear approximation)', int('--preview-every', 1))
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
        prompt2: o.prompt2, negativePrompt2: o.negativePrompt2, micro: microFrom(o),
        guidance: o.guidance, numImages: o.numImages, width: o.width, height: o.height,
        latents: o.latents ? loadTensor(o.latents, 'latents') : undefined, noise,
        controls, controlUncondSteps: o.controlUncondSteps, ipAdapters: await ipAdaptersFrom(o), imageEncoder: o.imageEncoder, onProgress: previews.listener(progress.onProgress), onWarning: (m) => progress.warn(m),
        preview: o.previewEvery ? { every: o.previewEvery, decoder: o.vaeTiny !== undefined ? ck.autoencoder() : undefined } : undefined,
      });
      for (const p of r.truncatedPrompts) progress.warn(`prompt longer than 77 tokens was truncated: ${JSON.stringify(p.slice(0, 60))}...`);
      if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
      const files = await writeImages(o.out, r.images, {
        method: method.name, guidance_mode: method.guidanceMode, reference: o.image, prompt: prompts ?? prompt, inversion_prompt: o.inversionPrompt ?? prompt,
        negative_prompt: o.negativePrompt ?? '', steps: o.steps, guidance: o.guidance, seed: o.latents ? null : String(s), noise: o.noise, model: o.model, ...ipAdapterParameters(o),
      });
      const previewFiles = await previews.flush();
      progress.done();
      if (!globals().quiet) process.stderr.write(`wrote ${files.join(', ')}${previewFiles.length ? ` and ${previewFiles.length} previews` : ''}\n`);
    });
}
