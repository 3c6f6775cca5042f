/** Training commands: `train-aligner` (Visual Concept Fusion). */
import type { Command } from 'commander';
import { InputError } from '../../errors.js';
import { trainAligner } from '../../pipelines/train-aligner.js';
import { trainAttribute } from '../../pipelines/train-attribute.js';
import { CLIPModel } from '../../components/clip-model.js';
import { float, int } from '../parse.js';
import { ensureDir } from '../outputs.js';
import type { GlobalOptions } from '../main.js';
import { openModel } from '../model.js';
import { ProgressReporter } from '../progress.js';

export function registerTrainCommands(program: Command, globals: () => GlobalOptions): void {
  program.command('train-aligner')
    .description('train the Visual Concept Fusion aligner (CLIP image tokens -> text-embedding space) on image/caption pairs')
    .requiredOption('--model <path>', 'Stable Diffusion checkpoint with image_encoder/ (the aligner fits its CLIP towers)')
    .requiredOption('--data <path>', 'JSONL of {"image", "caption"}, a COCO-Captions JSON, or a folder holding one')
    .requiredOption('--out <aligner.safetensors>', 'output: aligner weights + optimizer state (resumable)')
    .option('--epochs <e>', 'epochs over the pairs (default 1)', int('--epochs', 1))
    .option('--steps <n>', 'optimizer steps (overrides --epochs)', int('--steps', 1))
    .option('--batch-size <b>', 'pairs per step (InfoNCE negatives come from the batch)', int('--batch-size', 2), 64)
    .option('--lr <x>', 'Adam learning rate', float('--lr', 0), 1e-4)
    .option('--fraction <f>', 'use this fraction of the pairs (the paper: 0.1 of COCO Captions)', float('--fraction', 0, 1), 1)
    .option('--init <file>', 'start from these aligner weights')
    .option('--resume', 'continue the run stored in --out (weights, Adam state, step)', false)
    .option('--no-shuffle', 'batches in file order')
    .option('--hidden <h>', 'MLP hidden width for a fresh aligner (default: the text width)', int('--hidden', 1))
    .option('--lambda-rec <x>', 'weight of the cross-attention reconstruction loss', float('--lambda-rec', 0), 1)
    .option('--seed <s>', 'seed for the initialisation and the shuffling', int('--seed', 0), 0)
    .option('--save-every <n>', 'write a checkpoint every n steps', int('--save-every', 1))
    .option('--clip-skip <n>', 'text encoder layers to skip for the captions (diffusers clip_skip; use the value fuse will run with)', int('--clip-skip', 0))
    .action(async (o: { model: string; data: string; out: string; epochs?: number; steps?: number; batchSize: number; lr: number; fraction: number; init?: string; resume: boolean; shuffle: boolean; hidden?: number; lambdaRec: number; seed: number; saveEvery?: number; clipSkip?: number }) => {
      if (o.init && o.resume) throw new InputError('give --init or --resume, not both');
      const progress = new ProgressReporter(globals().quiet);
      ensureDir(o.out);
      const ck = openModel(o.model, globals());
      let last = '';
      const r = await trainAligner(ck, {
        data: o.data, out: o.out, steps: o.steps, epochs: o.epochs, batchSize: o.batchSize, lr: o.lr, fraction: o.fraction, init: o.init,
        resume: o.resume, shuffle: o.shuffle, hidden: o.hidden, lambdaRec: o.lambdaRec, seed: o.seed, saveEvery: o.saveEvery, clipSkip: o.clipSkip,
        onProgress: progress.onProgress, onWarning: (m) => progress.warn(m),
        onLoss: (step, l) => { last = `step ${step}: loss ${l.loss.toFixed(4)} (InfoNCE ${l.nce.toFixed(4)}, reconstruction ${l.rec.toFixed(4)})`; },
      });
      progress.done();
      if (!globals().quiet) process.stderr.write(`${last}\ntrained ${r.steps} step(s) on ${r.pairs} pairs (${r.missingImages} skipped, ${r.truncatedCaptions} captions truncated); wrote ${o.out}\n`);
    });

  program.command('train-attribute')
    .description('train an Asyrp attribute network (DeltaBlock) for visprompt edit, with the directional CLIP loss + L1')
    .requiredOption('--model <path>', 'Stable Diffusion checkpoint or pixel-space DDPM folder')
    .requiredOption('--images <dir>', 'folder of training images')
    .requiredOption('--source <text>', 'text describing the images (e.g. "a photo of a person")')
    .requiredOption('--target <text>', 'text describing the edit (e.g. "a photo of a smiling person")')
    .requiredOption('--clip <path>', 'CLIP model folder (transformers CLIPModel) for the directional loss')
    .requiredOption('--out <delta.safetensors>', 'output attribute network (loads in visprompt edit)')
    .option('--iterations <n>', 'passes over the images', int('--iterations', 1), 40)
    .option('--lr <x>', 'Adam learning rate (Asyrp: 0.5)', float('--lr', 0), 0.5)
    .option('--t-edit <t>', 'train on timesteps t >= T', int('--t-edit'), 500)
    .option('--steps <n>', 'DDIM steps of the inversion', int('--steps', 1, 1000), 40)
    .option('--visual-reference <generate|file>', 'fuse a visual direction into the CLIP direction: an image generated from --target ("generate") or an image file (the step-wise visual/text fusion of the Asyrp-family editing paper)')
    .option('--seed <s>', 'seed (initialisation, timestep sampling, generated reference)', int('--seed', 0), 0)
    .action(async (o: { model: string; images: string; source: string; target: string; clip: string; out: string; iterations: number; lr: number; tEdit: number; steps: number; visualReference?: string; seed: number }) => {
      const progress = new ProgressReporter(globals().quiet);
      ensureDir(o.out);
      const ck = openModel(o.model, globals());
      let last = '';
      const r = await trainAttribute(ck, {
        images: o.images, source: o.source, target: o.target, clip: CLIPModel.open(o.clip), out: o.out, iterations: o.iterations, lr: o.lr, tEdit: o.tEdit,
        steps: o.steps, visualReference: o.visualReference, seed: o.seed, onProgress: progress.onProgress, onWarning: (m) => progress.warn(m),
        onLoss: (i, l) => { last = `iteration ${i}: loss ${l.toFixed(4)}`; },
      });
      progress.done();
      if (!globals().quiet) process.stderr.write(`${last}\ntrained on ${r.images} image(s); wrote ${o.out}\n`);
    });
}
