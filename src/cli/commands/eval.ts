/**
 * `eval clip|dino|lpips|fid`: the papers' metrics. --image may be a folder (every image is scored
 * against the one --reference; the JSON gives the means, `n` and per-image values). Features are
 * cached by file hash (--cache-dir, VISPROMPT_EVAL_CACHE; --no-cache turns it off).
 */
import { Option, type Command } from 'commander';
import type { GlobalOptions } from '../main.js';
import { int } from '../parse.js';
import { defaultCacheDir } from '../../eval/feature-cache.js';
import { evalClip, evalDino, evalFid, evalLpips, listImages, type EvalOptions, type PairScores, type Skipped } from '../../eval/evaluate.js';

interface Common { json?: boolean; cache?: boolean; cacheDir?: string; quiet?: boolean }

function options(o: Common, globals: () => GlobalOptions, batchSize?: number): EvalOptions {
  const quiet = globals().quiet || o.json === true;
  return {
    cacheDir: o.cache === false ? undefined : (o.cacheDir ?? defaultCacheDir()),
    ...(batchSize !== undefined ? { batchSize } : {}),
    ...(quiet ? {} : { onImage: (d: number, t: number) => { if (t > 1) process.stderr.write(`\r${d}/${t} images`); if (d === t && t > 1) process.stderr.write('\n'); } }),
  };
}

function reportSkipped(skipped: readonly Skipped[]): void {
  for (const s of skipped) process.stderr.write(`warning: skipped ${s.file}: ${s.reason}\n`);
}

function print<K extends string>(r: PairScores<K>, json: boolean | undefined): void {
  reportSkipped(r.skipped);
  const single = r.perImage.length === 1 && r.skipped.length === 0;
  const out: Record<string, unknown> = { ...r.means };
  if (!single) Object.assign(out, { n: r.perImage.length, per_image: r.perImage, skipped: r.skipped });
  if (json) { process.stdout.write(`${JSON.stringify(out)}\n`); return; }
  for (const [k, v] of Object.entries(r.means)) process.stdout.write(`${k}: ${Number.isNaN(v) ? 'n/a' : (v as number).toFixed(6)}${single ? '' : ` (mean of ${r.perImage.length})`}\n`);
}

function common(cmd: Command): Command {
  return cmd.option('--json', 'print the result as one JSON line')
    .option('--quiet', 'no progress output')
    .option('--cache-dir <dir>', 'feature cache folder (default $VISPROMPT_EVAL_CACHE or ~/.cache/visprompt/eval)')
    .addOption(new Option('--no-cache', 'do not read or write cached features'));
}

export function registerEvalCommand(program: Command, globals: () => GlobalOptions): void {
  const ev = program.command('eval').description('evaluation metrics of the papers: clip (CLIP-I, CLIP-T), dino (DINO, DINO-G/C structure distance), lpips, fid');

  common(ev.command('clip')
    .description('CLIP-I = cos(CLIP image features of --image, of --reference); CLIP-T = cos(image, --text) (raw cosines, as InDetail-IP)')
    .requiredOption('--model <dir>', 'transformers CLIPModel folder')
    .requiredOption('--image <file|dir>', 'generated image, or a folder of them')
    .option('--reference <file>', 'the image prompt (CLIP-I)')
    .option('--text <text>', 'the text prompt (CLIP-T)'))
    .action(async (o: Common & { model: string; image: string; reference?: string; text?: string }) => {
      const r = await evalClip(o.model, listImages(o.image, '--image'), o.reference, o.text, options(o, globals));
      print(r, o.json);
    });

  common(ev.command('dino')
    .description('DINO = cos of the ViT CLS features; dino_structure = Splice self-similarity distance of the last layer\'s keys (DINO-G / DINO-C), on DINO\'s eval crop')
    .requiredOption('--model <path>', 'transformers ViTModel folder, or an official DINO .pth')
    .requiredOption('--image <file|dir>', 'generated image, or a folder of them')
    .requiredOption('--reference <file>', 'reference image (the image prompt, or the structure condition for DINO-C)')
    .option('--heads <n>', 'attention heads of an official DINO checkpoint (default: hidden size / 64)', int('--heads', 1, 1024)))
    .action(async (o: Common & { model: string; image: string; reference: string; heads?: number }) => {
      const r = await evalDino(o.model, listImages(o.image, '--image'), o.reference, { ...options(o, globals), ...(o.heads ? { heads: o.heads } : {}) });
      print(r, o.json);
    });

  common(ev.command('lpips')
    .description('LPIPS v0.1 (AlexNet) between --image and --reference (images of one size)')
    .requiredOption('--model <dir>', 'folder with the AlexNet features.* weights and the official alex.pth heads (or safetensors twins)')
    .requiredOption('--image <file|dir>', 'image, or a folder of them')
    .requiredOption('--reference <file>', 'reference image'))
    .action(async (o: Common & { model: string; image: string; reference: string }) => {
      const r = await evalLpips(o.model, listImages(o.image, '--image'), o.reference, options(o, globals));
      print(r, o.json);
    });

  common(ev.command('fid')
    .description('FID (pytorch-fid InceptionV3 pool3, Frechet distance in float64) of two image folders or two feature files')
    .option('--model <path>', 'pytorch-fid Inception weights (pt_inception-2015-12-05-6726825d.pth or a safetensors twin; or a folder holding it)')
    .option('--images-a <dir>', 'first image folder')
    .option('--images-b <dir>', 'second image folder')
    .option('--features-a <file>', 'first feature set: safetensors with `features` [N, 2048]')
    .option('--features-b <file>', 'second feature set')
    .option('--batch-size <n>', 'images per network run (default 50, as pytorch-fid)', int('--batch-size', 1, 4096))
    .option('--kid', 'also the Kernel Inception Distance (torchmetrics; set a = real, b = generated)')
    .option('--kid-subsets <n>', 'KID subsets (default 100, as torchmetrics)', int('--kid-subsets', 1))
    .option('--kid-subset-size <n>', 'KID rows per subset (default 1000, as torchmetrics)', int('--kid-subset-size', 2))
    .option('--kid-seed <n>', 'torch.manual_seed before the KID subsets are drawn (default 123)', int('--kid-seed', 0)))
    .action(async (o: Common & { model?: string; imagesA?: string; imagesB?: string; featuresA?: string; featuresB?: string; batchSize?: number; kid?: boolean; kidSubsets?: number; kidSubsetSize?: number; kidSeed?: number }) => {
      const kid = o.kid ? { subsets: o.kidSubsets ?? 100, subsetSize: o.kidSubsetSize ?? 1000, seed: o.kidSeed ?? 123 } : undefined;
      const r = await evalFid({ features: o.featuresA, images: o.imagesA }, { features: o.featuresB, images: o.imagesB }, o.model, { ...options(o, globals, o.batchSize), ...(kid ? { kid } : {}) });
      reportSkipped(r.skipped);
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      const kidOut = r.kid ? { kid_mean: r.kid.kidMean, kid_std: r.kid.kidStd } : {};
      if (o.json) process.stdout.write(`${JSON.stringify({ fid: r.fid, n_a: r.n_a, n_b: r.n_b, ...kidOut, ...(r.skipped.length ? { skipped: r.skipped } : {}) })}\n`);
      else process.stdout.write(`fid: ${r.fid.toFixed(6)} (${r.n_a} vs ${r.n_b} images)${r.kid ? `\nkid: ${r.kid.kidMean.toExponential(6)} +- ${r.kid.kidStd.toExponential(6)}` : ''}\n`);
    });
}
