/**
 * Running one job: its validated parameters turned into a library pipeline call, the results written
 * into the job's folder (PNGs with their parameters, safetensors for chains and latents). Used by the
 * embedded queue and by BullMQ workers alike; it calls the library, never the CLI.
 */
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import {
  createMethod, edit, fuseGenerate, inject, invert, readImageRGB, textToImage, vary,
  type ControlInput, type GeneratedImages, type ProgressEvent, type RGBImage,
} from '../index.js';
import { encodePNG } from '../io/image.js';
import { createNoise, type NoiseKind } from '../noise/gaussian.js';
import { towerOfCLIPModel } from '../methods/clip-guidance.js';
import { writeSafetensors } from '../io/safetensors.js';
import { concatRows, type Tensor } from '../tensor.js';
import type { ModelCache } from './models.js';
import type { Uploads } from './uploads.js';
import type { EditParams, FuseParams, GenerateParams, InjectParams, InvertParams, JobKind, VaryParams } from './schemas.js';
import { HttpError } from './http-error.js';
import { parseLoraSpec, type Checkpoint, type IPAdapterInput } from '../index.js';
import { writeFileAtomic } from './store.js';
import type { Precision } from '../graph/quantize.js';

export interface RunContext {
  models: ModelCache;
  uploads: Uploads;
  /** The job's result folder. */
  folder: string;
  signal?: AbortSignal;
  onProgress?: (e: ProgressEvent) => void;
  onWarning?: (message: string) => void;
}
export interface RunResult { files: string[]; seed?: string; warnings: string[] }

const require = createRequire(import.meta.url);
/** Versions recorded with every result (re-running exactly needs the same code). */
export function versions(): Record<string, string> {
  const v: Record<string, string> = { node: process.versions.node };
  for (const [k, mod] of [['visprompt', '../../../package.json'], ['onnxruntime-node', 'onnxruntime-node/package.json']] as const) {
    try { v[k] = (require(mod) as { version: string }).version; } catch { /* unknown */ }
  }
  return v;
}

/** The CLI's --seed semantics: an integer (bigint beyond 2^53); absent or A1111's -1: random. */
export function seedOf(s: number | string | undefined): number | bigint {
  if (s === undefined) return Math.floor(Math.random() * 2 ** 32);
  const b = BigInt(s);
  return b >= BigInt(Number.MIN_SAFE_INTEGER) && b <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(b) : b;
}

async function image(ctx: RunContext, id: string, field: string): Promise<RGBImage> {
  return readImageRGB(ctx.uploads.pathOf(id, field));
}

async function controls(ctx: RunContext, p: { controlnet: string[]; controlImage: string[]; controlScale: number[] }): Promise<ControlInput[]> {
  checkControls(p);
  const out: ControlInput[] = [];
  for (let j = 0; j < p.controlnet.length; j++) {
    out.push({ net: ctx.models.controlnet(p.controlnet[j]!, `controlnet[${j}]`), image: await image(ctx, p.controlImage[j]!, `controlImage[${j}]`), scale: p.controlScale[j] ?? 1 });
  }
  return out;
}

/** The job's model with its LoRAs (`lora`: NAME[:SCALE] under --models) and tiny VAE. */
export function openFor(ctx: Pick<RunContext, 'models'>, o: { model: string; lora?: string[]; vaeTiny?: string; precision?: Precision }): Checkpoint {
  const loras = (o.lora ?? []).map((spec, j) => {
    const l = parseLoraSpec(spec, `lora[${j}]`);
    return { path: ctx.models.path(l.path, `lora[${j}]`, ['weights']), ...(l.scale !== undefined ? { scale: l.scale } : {}) };
  });
  const vaeTiny = o.vaeTiny ? ctx.models.path(o.vaeTiny, 'vaeTiny', ['vae-tiny']) : undefined;
  return ctx.models.checkpoint(o.model, 'model', { loras, vaeTiny, ...(o.precision ? { precision: o.precision } : {}) });
}

/** `previewEvery`: previews of the x0 prediction in the progress events, decoded by the tiny VAE when the job names one. */
function previewOf(o: { previewEvery?: number; vaeTiny?: string }, ck: Checkpoint): { preview?: { every: number; decoder?: ReturnType<Checkpoint['autoencoder']> } } {
  return o.previewEvery ? { preview: { every: o.previewEvery, decoder: o.vaeTiny ? ck.autoencoder() : undefined } } : {};
}

/** The names a job refers to under --models, checked without loading anything (a 4xx at submission). */
export function checkNames(ctx: Pick<RunContext, 'models'>, o: { lora?: string[]; vaeTiny?: string; ipAdapter?: string[]; imageEncoder?: string; ipImage?: string[]; ipScale?: number[] }): void {
  for (const [j, spec] of (o.lora ?? []).entries()) ctx.models.path(parseLoraSpec(spec, `lora[${j}]`).path, `lora[${j}]`, ['weights']);
  if (o.vaeTiny) ctx.models.path(o.vaeTiny, 'vaeTiny', ['vae-tiny']);
  for (const [j, a] of (o.ipAdapter ?? []).entries()) ctx.models.path(a, `ipAdapter[${j}]`, ['weights']);
  if (o.imageEncoder) ctx.models.path(o.imageEncoder, 'imageEncoder', ['image-encoder', 'clip']);
  const n = o.ipAdapter?.length ?? 0;
  if ((o.ipImage?.length ?? 0) !== n) throw new HttpError(400, `ipImage: ${o.ipImage?.length ?? 0} images for ${n} ipAdapter entries (give one per IP-Adapter)`);
  if (o.ipScale && o.ipScale.length !== 0 && o.ipScale.length !== n) throw new HttpError(400, `ipScale: ${o.ipScale.length} scales for ${n} ipAdapter entries (none, or one per IP-Adapter)`);
  if (n === 0 && o.imageEncoder) throw new HttpError(400, 'imageEncoder: only used with ipAdapter');
}

async function ipAdaptersOf(ctx: RunContext, o: { ipAdapter: string[]; ipImage: string[]; ipScale: number[]; imageEncoder?: string }): Promise<{ ipAdapters: IPAdapterInput[]; imageEncoder?: string }> {
  const ipAdapters: IPAdapterInput[] = [];
  for (let j = 0; j < o.ipAdapter.length; j++) {
    ipAdapters.push({ adapter: ctx.models.path(o.ipAdapter[j]!, `ipAdapter[${j}]`, ['weights']), image: await image(ctx, o.ipImage[j]!, `ipImage[${j}]`), scale: o.ipScale[j] ?? 1 });
  }
  return { ipAdapters, ...(o.imageEncoder ? { imageEncoder: ctx.models.path(o.imageEncoder, 'imageEncoder', ['image-encoder', 'clip']) } : {}) };
}

/** SDXL conditioning extras: WIDTHxHEIGHT -> [height, width], TOP,LEFT -> [top, left] (the CLI's flag syntax). */
function conditioning(o: { prompt2?: string; negativePrompt2?: string; originalSize?: string; cropTopLeft?: string; targetSize?: string }): Record<string, unknown> {
  const size = (v: string): [number, number] => { const [w, h] = v.toLowerCase().split('x').map(Number); return [h!, w!]; };
  const micro = {
    ...(o.originalSize ? { originalSize: size(o.originalSize) } : {}),
    ...(o.cropTopLeft ? { cropTopLeft: o.cropTopLeft.split(',').map(Number) as [number, number] } : {}),
    ...(o.targetSize ? { targetSize: size(o.targetSize) } : {}),
  };
  return { ...(o.prompt2 !== undefined ? { prompt2: o.prompt2 } : {}), ...(o.negativePrompt2 !== undefined ? { negativePrompt2: o.negativePrompt2 } : {}), micro };
}

/** The CLI's pairing rule for --controlnet / --control-image / --control-scale, as a 400. */
export function checkControls(p: { controlnet: string[]; controlImage: string[]; controlScale: number[] }): void {
  const n = p.controlnet.length;
  if (p.controlImage.length !== n) throw new HttpError(400, `controlImage: ${p.controlImage.length} images for ${n} controlnet entries (give one per ControlNet)`);
  if (p.controlScale.length !== 0 && p.controlScale.length !== n) throw new HttpError(400, `controlScale: ${p.controlScale.length} scales for ${n} controlnet entries (none, or one per ControlNet)`);
}

async function writeImages(ctx: RunContext, images: readonly RGBImage[], parameters: Record<string, unknown>): Promise<string[]> {
  const files: string[] = [];
  for (const [i, im] of images.entries()) {
    const name = `image-${i}.png`;
    const png = await encodePNG(im, { parameters: JSON.stringify({ ...parameters, ...(images.length > 1 ? { index: i } : {}) }), Software: 'visprompt' });
    writeFileAtomic(path.join(ctx.folder, name), png);
    files.push(name);
  }
  return files;
}

function writeTensors(ctx: RunContext, name: string, tensors: Record<string, Tensor>, metadata?: Record<string, string>): string {
  const tmp = path.join(ctx.folder, `.${name}.${process.pid}.tmp`);
  writeSafetensors(tmp, tensors, metadata);
  fs.renameSync(tmp, path.join(ctx.folder, name));
  return name;
}

async function finish(ctx: RunContext, r: GeneratedImages, saveLatents: boolean, params: Record<string, unknown>, warnings: string[]): Promise<string[]> {
  for (const p of r.truncatedPrompts) warnings.push(`prompt longer than 77 tokens was truncated: ${JSON.stringify(p.slice(0, 60))}...`);
  const files = await writeImages(ctx, r.images, params);
  if (saveLatents) files.push(writeTensors(ctx, 'latents.safetensors', { latents: r.latents }));
  return files;
}

/** Run a validated job; results land in ctx.folder. */
export async function runJob(kind: JobKind, params: Record<string, unknown>, ctx: RunContext): Promise<RunResult> {
  fs.mkdirSync(ctx.folder, { recursive: true });
  const warnings: string[] = [];
  const onWarning = (m: string): void => { warnings.push(m); ctx.onWarning?.(m); };
  const ctl = { signal: ctx.signal, onProgress: ctx.onProgress };
  switch (kind) {
    case 'generate': {
      const o = params as GenerateParams;
      const ck = openFor(ctx, o);
      if (!ck.isPixelSpace() && o.prompt === undefined) throw new HttpError(400, 'prompt: required for text-conditioned models');
      if (ck.isPixelSpace() && o.prompt !== undefined) onWarning('this is an unconditional pixel-space model: prompt is ignored');
      const s = seedOf(o.seed);
      const r = await textToImage(ck, {
        prompt: o.prompt ?? '', negativePrompt: o.negativePrompt, steps: o.steps, guidance: o.guidance, width: o.width, height: o.height,
        numImages: o.numImages, noise: createNoise(o.noise as NoiseKind, s), scheduler: o.scheduler as string | undefined, timestepSpacing: o.timestepSpacing as never,
        eta: o.eta, clipSkip: o.clipSkip, ...conditioning(o), controls: await controls(ctx, o), ...(await ipAdaptersOf(ctx, o)),
        ...previewOf(o, ck), ...ctl,
      });
      const files = await finish(ctx, r, o.saveLatents, {
        prompt: o.prompt ?? null, negative_prompt: o.negativePrompt ?? '', steps: o.steps, guidance: o.guidance, seed: String(s), noise: o.noise,
        scheduler: o.scheduler ?? null, eta: o.eta, width: r.images[0]!.width, height: r.images[0]!.height, model: o.model,
      }, warnings);
      return { files, seed: String(s), warnings };
    }
    case 'vary': {
      const o = params as VaryParams;
      const cs = await controls(ctx, o);
      const method = createMethod(o.method as string, o.steps, {
        guidanceMode: o.guidanceMode as VaryParams['guidanceMode'] & ('conflict-free' | 'conflicting' | undefined), stratifiedSteps: o.stratifiedSteps,
        lambdaP: o.lambdaP, lambdaG: o.lambdaG, tAlign: o.tAlign, tEarly: o.tEarly, startStep: o.startStep, startLayer: o.startLayer, controlnet: cs.length > 0,
        scoreScale: o.scoreScale, scoreShift: o.scoreShift, inversionOffset: o.inversionOffset,
      });
      // prompt: one string, or a list (one image per prompt, StyleAligned's prompt list).
      const promptList = typeof o.prompt === 'string' ? [o.prompt] : o.prompt;
      const prompts = promptList && promptList.length > 1 ? promptList : undefined;
      const prompt = promptList?.[0] ?? o.inversionPrompt ?? '';
      if (o.scheduler !== undefined && o.scheduler !== 'ddim') throw new HttpError(400, `scheduler: vary samples with ddim only (as its method's official code); omit scheduler or pass ddim`);
      const ck = openFor(ctx, o);
      const s = seedOf(o.seed);
      const r = await vary(ck, {
        reference: await image(ctx, o.image, 'image'), method, prompt, prompts, inversionPrompt: o.inversionPrompt ?? prompt, inversionGuidance: o.inversionGuidance, negativePrompt: o.negativePrompt,
        steps: o.steps, guidance: o.guidance, numImages: o.numImages, width: o.width, height: o.height, noise: createNoise(o.noise as NoiseKind, s),
        controls: cs, controlUncondSteps: o.controlUncondSteps, clipSkip: o.clipSkip, ...conditioning(o), ...(await ipAdaptersOf(ctx, o)), onWarning,
        ...previewOf(o, ck), ...ctl,
      });
      const files = await finish(ctx, r, o.saveLatents, {
        method: method.name, guidance_mode: method.guidanceMode, reference: o.image, prompt, inversion_prompt: o.inversionPrompt ?? prompt,
        negative_prompt: o.negativePrompt ?? '', steps: o.steps, guidance: o.guidance, seed: String(s), noise: o.noise, model: o.model,
      }, warnings);
      return { files, seed: String(s), warnings };
    }
    case 'invert': {
      const o = params as InvertParams;
      const ck = openFor(ctx, o);
      const { prompt2, micro } = conditioning(o) as { prompt2?: string; micro: never };
      const inv = await invert(ck, await image(ctx, o.image, 'image'), { prompt: o.prompt, prompt2, micro, clipSkip: o.clipSkip, steps: o.steps, guidance: o.guidance, width: o.width, height: o.height, ...ctl });
      const chain = concatRows(inv.chain);
      const file = writeTensors(ctx, 'chain.safetensors', { chain: { shape: [chain.shape[0]!, 1, ...chain.shape.slice(1)], data: chain.data } }, { timesteps: JSON.stringify(inv.timesteps), prompt: o.prompt });
      return { files: [file], warnings };
    }
    case 'inject': {
      const o = params as InjectParams;
      if (o.gamma !== undefined && o.gammaRamp) throw new HttpError(400, 'gamma: give gamma or gammaRamp, not both');
      const ck = openFor(ctx, o);
      const s = seedOf(o.seed);
      const gamma = (o.gammaRamp as [number, number] | undefined) ?? o.gamma ?? 0.5;
      const r = await inject(ck, {
        original: await image(ctx, o.image, 'image'), content: await image(ctx, o.content, 'content'), prompt: o.prompt, clipSkip: o.clipSkip, steps: o.steps, tEdit: o.tEdit,
        gamma, omega: o.omega, mask: o.mask ? await image(ctx, o.mask, 'mask') : undefined, tNoise: o.tNoise, dtLambda: o.dtLambda,
        noise: createNoise(o.noise as NoiseKind, s), onWarning, ...previewOf(o, ck), ...ctl,
      });
      const files = await finish(ctx, r, o.saveLatents, { method: 'injectfusion', image: o.image, content: o.content, t_edit: o.tEdit, gamma, omega: o.omega, seed: String(s), prompt: o.prompt ?? null, steps: o.steps, model: o.model }, warnings);
      return { files, seed: String(s), warnings };
    }
    case 'edit': {
      const o = params as EditParams;
      const ck = openFor(ctx, o);
      const s = seedOf(o.seed);
      const r = await edit(ck, {
        image: await image(ctx, o.image, 'image'), attribute: ctx.models.file(o.attribute, 'attribute'), prompt: o.prompt, clipSkip: o.clipSkip, steps: o.steps, strength: o.strength,
        tEdit: o.tEdit, tBoost: o.tBoost, noise: createNoise(o.noise as NoiseKind, s), onWarning, ...previewOf(o, ck), ...ctl,
      });
      const files = await finish(ctx, r, o.saveLatents, { method: 'asyrp', image: o.image, attribute: o.attribute, strength: o.strength, t_edit: o.tEdit, t_boost: o.tBoost, seed: String(s), prompt: o.prompt ?? null, steps: o.steps, model: o.model }, warnings);
      return { files, seed: String(s), warnings };
    }
    case 'fuse': {
      const o = params as FuseParams;
      const ck = openFor(ctx, o);
      const s = seedOf(o.seed);
      const r = await fuseGenerate(ck, {
        aligner: ctx.models.file(o.aligner, 'aligner'), reference: await image(ctx, o.image, 'image'), prompt: o.prompt, negativePrompt: o.negativePrompt,
        fusion: o.fusion as FuseParams['fusion'] & ('concat' | 'average' | 'cross-attention'), steps: o.steps, guidance: o.guidance, width: o.width, height: o.height,
        numImages: o.numImages, noise: createNoise(o.noise as NoiseKind, s), pnoSteps: o.pnoSteps, pnoLr: o.pnoLr,
        tower: o.clip ? towerOfCLIPModel(ctx.models.clip(o.clip)) : undefined, checkpointing: o.checkpointing, controls: await controls(ctx, o), clipSkip: o.clipSkip, ...(await ipAdaptersOf(ctx, o)), ...conditioning(o), ...previewOf(o, ck), ...ctl,
      });
      const files = await finish(ctx, r, o.saveLatents, {
        method: 'visual-concept-fusion', fusion: o.fusion, aligner: o.aligner, reference: o.image, prompt: o.prompt, negative_prompt: o.negativePrompt ?? '',
        steps: o.steps, guidance: o.guidance, seed: String(s), pno_steps: o.pnoSteps, pno_lr: o.pnoLr, model: o.model,
      }, warnings);
      return { files, seed: String(s), warnings };
    }
  }
}
