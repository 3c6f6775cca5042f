/**
 * `onnxruntime-node` in the browser build: onnxruntime-web with its WebGPU provider (the same C++
 * WebGPU kernels as onnxruntime-node's, compiled to WebAssembly) and its WebAssembly CPU provider,
 * which the engine's 'cpu' device selects. The .wasm ships inside the npm package and Vite emits it as
 * an asset beside the bundle: nothing is downloaded from elsewhere.
 */
import * as ort from 'onnxruntime-web/webgpu';

// Threads need SharedArrayBuffer, which browsers give only to cross-origin-isolated pages.
const g = globalThis as { crossOriginIsolated?: boolean; navigator?: { hardwareConcurrency?: number } };
ort.env.wasm.numThreads = g.crossOriginIsolated ? Math.min(4, g.navigator?.hardwareConcurrency ?? 1) : 1;

export default ort;
export const { InferenceSession, Tensor, env } = ort;
