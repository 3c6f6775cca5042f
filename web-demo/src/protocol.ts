/** Messages between the demo page and its worker (the worker runs the library). */
export interface RGB { width: number; height: number; data: Uint8Array }
export interface PickedFile { path: string; blob: File }

/** Settings a single-file checkpoint's tensors do not tell (the page's URL query: ?unetHeads=8&textHeads=4). */
export interface SingleFileOptions { unetHeads?: number; textHeads?: number }

export interface SamplingRequest {
  prompt: string;
  negativePrompt: string;
  steps: number;
  guidance: number;
  width?: number;
  height?: number;
  seed: number;
  /** auto: WebGPU when the browser has an adapter, else WebAssembly. */
  device: 'auto' | 'webgpu' | 'wasm';
}

export type ToWorker =
  | { type: 'load'; files: PickedFile[]; options: SingleFileOptions }
  | ({ type: 'generate' } & SamplingRequest)
  | ({ type: 'vary'; reference: RGB; inversionPrompt: string; lambdaP: number; stratifiedSteps?: number } & SamplingRequest)
  | { type: 'cancel' };

export interface ResultMessage {
  type: 'result';
  kind: 'generate' | 'vary';
  /** 'webgpu' or 'cpu' (WebAssembly). */
  device: string;
  latents: { shape: number[]; data: Float32Array };
  images: RGB[];
  seconds: number;
}

export type FromWorker =
  | { type: 'loaded'; root: string; components: string[]; warnings: string[]; width: number; height: number }
  | { type: 'progress'; stage: string; step: number; total: number }
  | ResultMessage
  | { type: 'error'; message: string };
