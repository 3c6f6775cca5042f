/**
 * The papers' metrics over image files or folders, with features cached by file hash:
 * CLIP-I / CLIP-T (raw cosines, as InDetail-IP's Table 1), DINO (CLS cosine) and the Splice structure
 * distance (DINO-G / DINO-C), LPIPS, FID.
 */
import fs from 'node:fs';
import path from 'node:path';
import { CLIPModel } from '../components/clip-model.js';
import { FileFormatError, InputError } from '../errors.js';
import { readImageRGB, type RGBImage } from '../io/image.js';
import { readAllFloat32 } from '../io/safetensors.js';
import { cosine, DinoViT, keysSelfSimilarity, structureDistance } from './dino-vit.js';
import { FeatureCache, fileHash, networkId } from './feature-cache.js';
import { FIDInception } from './fid-inception.js';
import { featureStats, frechetDistance } from './frechet.js';
import { kernelInceptionDistance, type KidOptions } from './kid.js';
import { LPIPS } from './lpips.js';

const IMAGE_EXT = /\.(png|jpe?g|webp|bmp|gif|tiff?|avif)$/i;

/** An image file, or every image file of a folder (sorted by name). */
export function listImages(p: string, flag: string): string[] {
  if (!fs.existsSync(p)) throw new InputError(`${flag} ${p}: no such file or folder`);
  if (!fs.statSync(p).isDirectory()) return [p];
  const files = fs.readdirSync(p).filter((f) => IMAGE_EXT.test(f)).sort().map((f) => path.join(p, f));
  if (files.length === 0) throw new InputError(`${flag} ${p}: the folder holds no images`);
  return files;
}

export interface EvalOptions {
  /** Feature cache folder; undefined turns caching off. */
  readonly cacheDir?: string;
  readonly batchSize?: number;
  /** Called per processed image (progress). */
  readonly onImage?: (done: number, total: number) => void;
}

/** Images that failed to decode are skipped and reported. */
export interface Skipped { readonly file: string; readonly reason: string }

async function decodeAll(files: readonly string[], skipped: Skipped[]): Promise<{ file: string; image: RGBImage }[]> {
  const out: { file: string; image: RGBImage }[] = [];
  for (const file of files) {
    try { out.push({ file, image: await readImageRGB(file) }); } catch (e) { skipped.push({ file, reason: (e as Error).message }); }
  }
  return out;
}

function mean(xs: readonly number[]): number { return xs.reduce((s, v) => s + v, 0) / xs.length; }

export interface PairScores<K extends string> {
  readonly means: Record<K, number>;
  readonly perImage: ({ file: string } & Record<K, number>)[];
  readonly skipped: Skipped[];
}

/** CLIP-I = cos(image features of each generated image, of the reference); CLIP-T = cos(image, text). */
export async function evalClip(modelDir: string, images: string[], reference: string | undefined, text: string | undefined, opts: EvalOptions = {}): Promise<PairScores<'clip_i' | 'clip_t'>> {
  if (!reference && text === undefined) throw new InputError('eval clip: give --reference (CLIP-I) and/or --text (CLIP-T)');
  const model = CLIPModel.open(modelDir);
  const cache = new FeatureCache(opts.cacheDir, `clip-${networkId(modelDir)}`);
  const skipped: Skipped[] = [];
  const embed = async (file: string): Promise<Float32Array | undefined> => {
    const h = fileHash(file);
    const hit = cache.get(h, 'image');
    if (hit) return hit;
    const [d] = await decodeAll([file], skipped);
    if (!d) return undefined;
    const f = (await model.imageFeatures([d.image])).data.slice();
    cache.set(h, 'image', f);
    return f;
  };
  const ref = reference ? await embed(reference) : undefined;
  if (reference && !ref) throw new FileFormatError(reference, skipped[0]?.reason ?? 'cannot decode');
  const txt = text !== undefined ? (await model.textFeatures([text])).data : undefined;
  const perImage: ({ file: string } & Record<'clip_i' | 'clip_t', number>)[] = [];
  for (const [i, file] of images.entries()) {
    const f = await embed(file);
    opts.onImage?.(i + 1, images.length);
    if (!f) continue;
    perImage.push({ file, clip_i: ref ? cosine(f, ref) : NaN, clip_t: txt ? cosine(f, txt) : NaN });
  }
  if (perImage.length === 0) throw new InputError('eval clip: no image could be decoded');
  return { means: { clip_i: mean(perImage.map((p) => p.clip_i)), clip_t: mean(perImage.map((p) => p.clip_t)) }, perImage, skipped };
}

/** DINO (CLS cosine) and the Splice keys self-similarity distance, each generated image vs the reference. */
export async function evalDino(modelPath: string, images: string[], reference: string, opts: EvalOptions & { heads?: number } = {}): Promise<PairScores<'dino' | 'dino_structure'>> {
  const model = DinoViT.open(modelPath, opts.heads);
  const cache = new FeatureCache(opts.cacheDir, `dino-${networkId(modelPath)}-${model.config.numAttentionHeads}`);
  const skipped: Skipped[] = [];
  const t = model.tokens, d = model.config.hiddenSize;
  const feats = async (file: string): Promise<{ cls: Float32Array; keys: Float32Array } | undefined> => {
    const h = fileHash(file);
    const cls = cache.get(h, 'cls'), keys = cache.get(h, 'keys');
    if (cls && keys && cls.length === d && keys.length === t * d) return { cls, keys };
    const [im] = await decodeAll([file], skipped);
    if (!im) return undefined;
    const [f] = await model.features([im.image]);
    cache.set(h, 'cls', f!.cls);
    cache.set(h, 'keys', f!.keys);
    return f;
  };
  const ref = await feats(reference);
  if (!ref) throw new FileFormatError(reference, skipped[0]?.reason ?? 'cannot decode');
  const refSim = keysSelfSimilarity(ref.keys, t, d);
  const perImage: ({ file: string } & Record<'dino' | 'dino_structure', number>)[] = [];
  for (const [i, file] of images.entries()) {
    const f = await feats(file);
    opts.onImage?.(i + 1, images.length);
    if (!f) continue;
    perImage.push({ file, dino: cosine(f.cls, ref.cls), dino_structure: structureDistance(keysSelfSimilarity(f.keys, t, d), refSim) });
  }
  if (perImage.length === 0) throw new InputError('eval dino: no image could be decoded');
  return { means: { dino: mean(perImage.map((p) => p.dino)), dino_structure: mean(perImage.map((p) => p.dino_structure)) }, perImage, skipped };
}

/** LPIPS (AlexNet, v0.1) of each image against the reference. */
export async function evalLpips(modelDir: string, images: string[], reference: string, opts: EvalOptions = {}): Promise<PairScores<'lpips'>> {
  const model = LPIPS.open(modelDir);
  const skipped: Skipped[] = [];
  const [ref] = await decodeAll([reference], skipped);
  if (!ref) throw new FileFormatError(reference, skipped[0]?.reason ?? 'cannot decode');
  const perImage: ({ file: string } & Record<'lpips', number>)[] = [];
  for (const [i, file] of images.entries()) {
    const [im] = await decodeAll([file], skipped);
    opts.onImage?.(i + 1, images.length);
    if (!im) continue;
    perImage.push({ file, lpips: (await model.distance(im.image, ref.image)).lpips });
  }
  if (perImage.length === 0) throw new InputError('eval lpips: no image could be decoded');
  return { means: { lpips: mean(perImage.map((p) => p.lpips)) }, perImage, skipped };
}

/** pool3 features of image files, streamed in batches, cached by file hash. */
export async function inceptionFeatures(model: FIDInception, files: readonly string[], opts: EvalOptions, skipped: Skipped[]): Promise<Float32Array[]> {
  const cache = new FeatureCache(opts.cacheDir, `fid-${networkId(model.file)}`);
  const batch = opts.batchSize ?? 50;
  const out: Float32Array[] = [];
  for (let s = 0; s < files.length; s += batch) {
    const part = files.slice(s, s + batch);
    const hashes = part.map(fileHash);
    const hits = hashes.map((h) => cache.get(h, 'pool3'));
    const missing = part.filter((_, i) => !hits[i]);
    const decoded = await decodeAll(missing, skipped);
    const feats = decoded.length ? await model.features(decoded.map((d) => d.image), batch) : [];
    const byFile = new Map(decoded.map((d, i) => [d.file, feats[i]!]));
    part.forEach((f, i) => {
      const v = hits[i] ?? byFile.get(f);
      if (!v) return;
      if (!hits[i]) cache.set(hashes[i]!, 'pool3', v);
      out.push(v);
    });
    opts.onImage?.(Math.min(s + batch, files.length), files.length);
  }
  return out;
}

/** Rows of the `features` [N, D] tensor of a safetensors file. */
export function readFeatureRows(file: string): Float32Array[] {
  const t = readAllFloat32(file)['features'];
  if (!t) throw new FileFormatError(file, 'missing tensor (expected [N, D] features)', 'features');
  if (t.shape.length !== 2) throw new FileFormatError(file, `expected shape [N, D], got [${t.shape.join(', ')}]`, 'features');
  const [n, d] = t.shape as [number, number];
  return Array.from({ length: n }, (_, i) => t.data.slice(i * d, (i + 1) * d));
}

export interface FidResult {
  readonly fid: number;
  readonly n_a: number;
  readonly n_b: number;
  readonly warnings: string[];
  readonly skipped: Skipped[];
  /** With `kid`: torchmetrics' KID mean and (population) standard deviation over the subsets. */
  readonly kid?: { readonly kidMean: number; readonly kidStd: number };
}

/** FID of two sets given as feature files or image folders (the network is needed for images only). */
export async function evalFid(a: { features?: string; images?: string }, b: { features?: string; images?: string }, modelPath: string | undefined, opts: EvalOptions & { kid?: KidOptions } = {}): Promise<FidResult> {
  const skipped: Skipped[] = [];
  let model: FIDInception | undefined;
  const rows = async (s: { features?: string; images?: string }, which: string): Promise<Float32Array[]> => {
    if (s.features) return readFeatureRows(s.features);
    if (!s.images) throw new InputError(`eval fid: give --features-${which} or --images-${which}`);
    if (!modelPath) throw new InputError('eval fid: --model (the pytorch-fid Inception weights) is needed to score images');
    model ??= FIDInception.open(modelPath);
    return inceptionFeatures(model, listImages(s.images, `--images-${which}`), opts, skipped);
  };
  const fa = await rows(a, 'a'), fb = await rows(b, 'b');
  const r = frechetDistance(featureStats(fa, 'set a'), featureStats(fb, 'set b'));
  const kid = opts.kid ? kernelInceptionDistance(fa, fb, opts.kid) : undefined;
  return { fid: r.fid, n_a: fa.length, n_b: fb.length, warnings: r.warnings, skipped, ...(kid ? { kid } : {}) };
}
