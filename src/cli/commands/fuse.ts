/** `fuse`: Visual Concept Fusion generation (aligned image tokens fused with the prompt; optional PNO). */
import type { Command } from 'commander';
import { CLIPModel } from '../../components/clip-model.js';
import { readImageRGB } from '../../io/image.js';
import { towerOfCLIPModel } from '../../methods/clip-guidance.js';
import type { Fusion } from '../../methods/vcf/fusion.js';
import { fuseGenerate } from '../../pipelines/fuse.js';
import { loadTensor, saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { openModel } from '../model.js';
import { ProgressReporter } from '../progress.js';
import { PreviewWriter } from '../previews.js';
import { parametersChunk } from '../png-parameters.js';
import { controlsFrom, noiseFor, requireDdim, type SamplingFlags } from './generate.js';
import { ipAdapterParameters, ipAdaptersFrom, type IPAdapterFlags } from '../ip-adapter-flags.js';
import { FUSE_OPTIONS } from '../../params/job-options.js';
import { addOptions } from '../../params/option-spec.js';

export function registerFuseCommand(program: Command, globals: () => GlobalOptions): void {
  addOptions(program.command('fuse').description('Visual Concept Fusion: generate from a prompt fused with a reference image through a trained aligner'), FUSE_OPTIONS)
    .action(async (o: SamplingFlags & IPAdapterFlags & { clipSkip?: number; aligner: string; image: string; prompt: string; fusion: Fusion; pnoSteps: number; pnoLr: number; clip?: string; checkpointing: boolean; previewEvery?: number }) => {
      const progress = new ProgressReporter(globals().quiet);
      requireDdim(o, 'fuse');
      const ck = openModel(o.model, globals(), o);
      const previews = new PreviewWriter(o.out);
      const { seed: s, noise } = noiseFor(o);
      const r = await fuseGenerate(ck, {
        aligner: o.aligner, reference: await readImageRGB(o.image), prompt: o.prompt, negativePrompt: o.negativePrompt, fusion: o.fusion,
        steps: o.steps, guidance: o.guidance, width: o.width, height: o.height, numImages: o.numImages, latents: o.latents ? loadTensor(o.latents, 'latents') : undefined,
        noise, pnoSteps: o.pnoSteps, pnoLr: o.pnoLr, tower: o.clip ? towerOfCLIPModel(CLIPModel.open(o.clip)) : undefined, checkpointing: o.checkpointing,
        controls: await controlsFrom(o), ipAdapters: await ipAdaptersFrom(o), imageEncoder: o.imageEncoder, clipSkip: o.clipSkip, onWarning: (m) => progress.warn(m), onProgress: previews.listener(progress.onProgress),
        preview: o.previewEvery ? { every: o.previewEvery, decoder: o.vaeTiny !== undefined ? ck.autoencoder() : undefined } : undefined,
      });
      if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
      const files = await writeImages(o.out, r.images, parametersChunk(FUSE_OPTIONS, o, globals(), {
        method: 'visual-concept-fusion', fusion: o.fusion, aligner: o.aligner, reference: o.image, prompt: o.prompt, negative_prompt: o.negativePrompt ?? '',
        steps: o.steps, guidance: o.guidance, seed: o.latents ? null : String(s), pno_steps: o.pnoSteps, pno_lr: o.pnoLr, model: o.model, ...ipAdapterParameters(o),
      }));
      const previewFiles = await previews.flush();
      progress.done();
      if (!globals().quiet) {
        for (const [i, l] of r.pnoLosses.entries()) process.stderr.write(`PNO image ${i}: loss ${l[0]?.toFixed(4)} -> ${l[l.length - 1]?.toFixed(4)}\n`);
        process.stderr.write(`wrote ${files.join(', ')}${previewFiles.length ? ` and ${previewFiles.length} previews` : ''}\n`);
      }
    });
}
