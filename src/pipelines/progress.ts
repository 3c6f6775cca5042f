/** Progress and cancellation, reported by pipeline loops and shown by the CLI / server. */
export interface ProgressEvent {
  /** e.g. 'load', 'encode', 'denoise', 'invert', 'decode' */
  readonly stage: string;
  readonly step: number;
  readonly total: number;
}

export interface RunControl {
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

export function report(ctl: RunControl | undefined, stage: string, step: number, total: number): void {
  ctl?.signal?.throwIfAborted();
  ctl?.onProgress?.({ stage, step, total });
}
