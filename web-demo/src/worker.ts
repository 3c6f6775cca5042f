/**
 * The demo's worker: runs the visprompt library (the browser build, src/runtime/web) on the files the
 * page hands over. Tensor reads are synchronous Blob slices (FileReaderSync), so this must be a worker.
 */
import {
  createMethod, createNoise, mountBundledTokenizer, mountModel, openCheckpoint, pickDevice, textToImage, useDevice, vary,
  type Checkpoint, type ProgressEvent,
} from '../../src/runtime/web/index.js';
import vocabUrl from '../../assets/clip/vocab.json?url';
import mergesUrl from '../../assets/clip/merges.txt?url';
import type { FromWorker, SamplingRequest, SingleFileOptions, ToWorker } from './protocol.js';

let ck: Checkpoint | undefined;
let abort: AbortController | undefined;
const post = (m: FromWorker, transfer: Transferable[] = []): void => (self as unknown as Worker).postMessage(m, transfer);
const onProgress = (e: ProgressEvent): void => post({ type: 'progress', stage: e.stage, step: e.step, total: e.total });

async function load(files: { path: string; blob: File }[], options: SingleFileOptions): Promise<void> {
  const root = mountModel(files);
  // Single-file checkpoints have no tokenizer files: the build ships the CLIP vocabulary.
  if (files.length === 1) {
    const [vocab, merges] = await Promise.all([fetch(vocabUrl), fetch(mergesUrl)].map(async (r) => (await r).blob()));
    mountBundledTokenizer(vocab!, merges!);
  }
  ck = openCheckpoint(root, Object.fromEntries(Object.entries(options).filter(([, v]) => v !== undefined)));
  const unet = ck.unet();
  const factor = ck.autoencoder().scaleFactor;
  const components = ['text_encoder', 'text_encoder_2', 'unet', 'vae', 'image_encoder'].filter((c) => ck!.has(c as Parameters<Checkpoint['has']>[0]));
  post({ type: 'loaded', root, components, warnings: ck.warnings, width: unet.sampleSize * factor, height: unet.sampleSize * factor });
}

async function prepare(r: SamplingRequest): Promise<string> {
  if (!ck) throw new Error('open a model first');
  const device = await pickDevice(r.device);
  useDevice(device);
  abort = new AbortController();
  return device;
}

async function handle(m: ToWorker): Promise<void> {
  if (m.type === 'cancel') { abort?.abort(); return; }
  if (m.type === 'load') { await load(m.files, m.options); return; }
  const device = await prepare(m);
  const t0 = performance.now();
  const common = {
    prompt: m.prompt, negativePrompt: m.negativePrompt || undefined, steps: m.steps, guidance: m.guidance,
    width: m.width, height: m.height, noise: createNoise('torch', m.seed), onProgress, signal: abort!.signal,
  };
  const r = m.type === 'generate'
    ? await textToImage(ck!, common)
    : await vary(ck!, {
      ...common, reference: m.reference, inversionPrompt: m.inversionPrompt,
      method: createMethod('indetail-ip', m.steps, { lambdaP: m.lambdaP, ...(m.stratifiedSteps !== undefined ? { stratifiedSteps: m.stratifiedSteps } : {}) }),
    });
  const latents = { shape: [...r.latents.shape], data: new Float32Array(r.latents.data) };
  const images = r.images.map((im) => ({ width: im.width, height: im.height, data: new Uint8Array(im.data) }));
  post({ type: 'result', kind: m.type, device, latents, images, seconds: (performance.now() - t0) / 1000 }, [latents.data.buffer, ...images.map((i) => i.data.buffer)]);
}

// One request at a time, in order (a cancel goes through at once).
let queue = Promise.resolve();
self.onmessage = (ev: MessageEvent<ToWorker>): void => {
  if (ev.data.type === 'cancel') { void handle(ev.data); return; }
  queue = queue.then(() => handle(ev.data)).catch((e: unknown) => {
    post({ type: 'error', message: e instanceof Error ? e.message.split('\n')[0]! : String(e) });
  });
};
