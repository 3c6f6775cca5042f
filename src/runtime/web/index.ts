/**
 * visprompt in the browser: the same pipelines, models and graph code as in Node, built by Vite with
 * the Node-only modules swapped for the ones in this folder (web-demo/aliases.mjs lists them):
 * onnxruntime-node -> onnxruntime-web (WebGPU, else WebAssembly), node:fs -> a read-only file system
 * over the user's File objects, sharp -> nothing (images are decoded and encoded by the browser).
 * Run it in a dedicated worker: tensor reads are synchronous (FileReaderSync).
 */
import './globals.js';
import { configureEngine, releaseSessions, type Device } from '../../graph/session.js';
import { setHost } from '../host.js';
import { BUNDLED_CLIP_DIR } from '../../io/clip-tokenizer.js';
import { mount, unmount, type BlobLike } from './fs.js';

// ONNX Runtime cannot open the user's files by path here: weights are read and passed in memory.
setHost({ engineReadsFiles: false });

export { openCheckpoint, Checkpoint } from '../../components/checkpoint.js';
export { textToImage, type TextToImageOptions } from '../../pipelines/text-to-image.js';
export { vary, type VaryOptions } from '../../pipelines/vary.js';
export { createMethod, METHOD_NAMES } from '../../methods/index.js';
export { createNoise } from '../../noise/gaussian.js';
export { configureEngine, releaseSessions, engineDevice, type Device } from '../../graph/session.js';
export { VispromptError } from '../../errors.js';
export type { RGBImage } from '../../io/image.js';
export type { Tensor } from '../../tensor.js';
export type { ProgressEvent } from '../../pipelines/progress.js';

/** A file picked by the user, with its path relative to the picked folder ('unet/config.json'). */
export interface PickedFile { readonly path: string; readonly blob: BlobLike }

const MODEL_ROOT = '/model';

/**
 * Make the picked files the model: a diffusers folder (the path of the folder holding model_index.json,
 * or unet/ etc.) or one single-file checkpoint. Returns the path to give `openCheckpoint`. Nothing is
 * read yet; each tensor is read from its File when a graph needs it.
 */
export function mountModel(files: readonly PickedFile[]): string {
  unmount(MODEL_ROOT);
  void releaseSessions();
  if (files.length === 0) throw new Error('no files picked');
  mount(MODEL_ROOT, files);
  if (files.length === 1 && !files[0]!.path.includes('/')) return `${MODEL_ROOT}/${files[0]!.path}`;
  // The folder that holds model_index.json (webkitdirectory paths start with the picked folder's name).
  const index = files.map((f) => f.path).filter((p) => p === 'model_index.json' || p.endsWith('/model_index.json')).sort((a, b) => a.length - b.length)[0];
  if (index) return `${MODEL_ROOT}/${index.slice(0, -'model_index.json'.length)}`.replace(/\/$/, '');
  const first = files[0]!.path.split('/');
  return first.length > 1 ? `${MODEL_ROOT}/${first[0]}` : MODEL_ROOT;
}

/**
 * The CLIP vocabulary single-file checkpoints are tokenized with (they carry no tokenizer files): the
 * caller fetches vocab.json and merges.txt (shipped with the build) and they are mounted where the
 * tokenizer looks for them.
 */
export function mountBundledTokenizer(vocab: BlobLike, merges: BlobLike): void {
  mount(BUNDLED_CLIP_DIR, [{ path: 'vocab.json', blob: vocab }, { path: 'merges.txt', blob: merges }]);
}

/** WebGPU when the browser has an adapter, else WebAssembly on the CPU ('cpu'). */
export async function pickDevice(prefer: 'auto' | 'webgpu' | 'wasm' = 'auto'): Promise<Device> {
  if (prefer === 'wasm') return 'cpu';
  const gpu = (globalThis as { navigator?: { gpu?: { requestAdapter(): Promise<unknown> } } }).navigator?.gpu;
  const adapter = gpu ? await gpu.requestAdapter().catch(() => null) : null;
  if (adapter) return 'webgpu';
  if (prefer === 'webgpu') throw new Error('WebGPU is not available in this browser (no adapter); choose WebAssembly');
  return 'cpu';
}

/** Select the device for the next graphs (drops sessions built for another). */
export function useDevice(device: Device): void {
  configureEngine({ device, lowMemory: true });
}
