/** `fuse`: Visual Concept Fusion generation (aligned image tokens fused with the prompt; optional PNO). */
import type { Command } from 'commander';
import { CLIPModel } from '../../components/clip-model.js';
import { readImageRGB } from '../../io/image.js';
import { towerOfCLIPModel } from '../../methods/clip-guidance.js';
import { FUSIONS, type Fusion } from '../../methods/vcf/fusion.js';
import { fuseGenerate } from '../../pipelines/fuse.js';
import { choice, float, int } from '../parse.js';
import { loadTensor, saveTensors, writeImages } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { openModel } from '../model.js';
import { ProgressReporter } from '../progress.js';
import { addSamplingFlags, controlsFrom, noiseFor, requireDdim, type SamplingFlags } from './generate.js';

export function registerFuseCommand(program: Command, globals: () => GlobalOptions): void {
  addSamplingFlags(program.command('fuse').description('Visual Concept Fusion: generate from a prompt fused with a reference image through a trained aligner'), { steps: 50, guidance: 7.5 })
    .requiredOption('--aligner <file>', 'aligner weights from train-aligner')
    .requiredOption('--image <file>', 'the reference image (visual concept)')
    .requiredOption('--prompt <text>', 'the prompt')
    .option('--fusion <kind>', `how image and text tokens combine: ${FUSIONS.join(', ')}`, choice('--fusion', FUSIONS), 'concat')
    .option('--pno-steps <n>', 'Prompt-Noise Optimization iterations (0: off; the paper uses 10-50)', int('--pno-steps', 0, 1000), 0)
    .option('--pno-lr <x>', 'Adam learning rate of PNO', float('--pno-lr', 0), 1e-2)
    .option('--clip <path>', 'CLIP model folder for PNO\'s similarity (default: the checkpoint\'s image_encoder)')
    .option('--no-checkpointing', 'PNO: keep every activation of the sampling chain instead of recomputing each UNet call (faster, more memory)')
    .action(async (o: SamplingFlags & { aligner: string; image: string; prompt: string; fusion: Fusion; pnoSteps: number; pnoLr: number; clip?: string; checkpointing: boolean }) => {
      const progress = new ProgressReporter(globals().quiet);
      requireDdim(o, 'fuse');
      const ck = openModel(o.model, globals(), o);
      const { seed: s, noise } = noiseFor(o);
      const r = await fuseGenerate(ck, {
        aligner: o.aligner, reference: await readImageRGB(o.image), prompt: o.prompt, negativePrompt: o.negativePrompt, fusion: o.fusion,
        steps: o.steps, guidance: o.guidance, width: o.width, height: o.height, numImages: o.numImages, latents: o.latents ? loadTensor(o.latents, 'latents') : undefined,
        noise, pnoSteps: o.pnoSteps, pnoLr: o.pnoLr, tower: o.clip ? towerOfCLIPModel(CLIPModel.open(o.clip)) : undefined, checkpointing: o.checkpointing,
        controls: await controlsFrom(o), onProgress: progress.onProgress,
      });
      if (o.saveLatents) saveTensors(o.saveLatents, { latents: r.latents });
      const files = await writeImages(o.out, r.images, {
        method: 'visual-concept-fusion', fusion: o.fusion, aligner: o.aligner, reference: o.image, prompt: o.prompt, negative_prompt: o.negativePrompt ?? '',
        steps: o.steps, guidance: o.guidance, seed: o.latents ? null : String(s), pno_steps: o.pnoSteps, pno_lr: o.pnoLr, model: o.model,
      });
      progress.done();
      if (!globals().quiet) {
        for (const [i, l] of r.pnoLosses.entries()) process.stderr.write(`PNO image ${i}: loss ${l[0]?.toFixed(4)} -> ${l[l.length - 1]?.toFixed(4)}\n`);
        process.stderr.write(`wrote ${files.join(', ')}\n`);
      }
    });
}
