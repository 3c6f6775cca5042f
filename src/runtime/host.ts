/**
 * What the process hosting the library offers the engine. Node (the default): ONNX Runtime reads
 * float32 weights straight from the checkpoint's files by offset, so they never pass through
 * JavaScript. The browser build (src/runtime/web) has no file paths ONNX Runtime could open: weights
 * are read from the user's File objects and handed over in memory.
 */
export interface Host {
  /** Whether ONNX Runtime may be given a folder to read file-backed initializers from. */
  readonly engineReadsFiles: boolean;
}

let current: Host = { engineReadsFiles: true };

export function setHost(h: Partial<Host>): void { current = { ...current, ...h }; }

export function host(): Host { return current; }
