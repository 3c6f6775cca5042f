/** Progress and cancellation, reported by pipeline loops and shown by the CLI / server. */
export interface ProgressEvent {
  /** e.g. 'load', 'encode', 'denoise', 'invert', 'decode' */
  readonly stage: string;
  readonly step: number;
  readonly total: number;
  /** A short status shown beside the bar (e.g. the current loss). */
  readonly detail?: string;
}

export interface RunControl {
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

export function report(ctl: RunControl | undefined, stage: string, step: number, total: number, detail?: string): void {
  ctl?.signal?.throwIfAborted();
  ctl?.onProgress?.(detail === undefined ? { stage, step, total } : { stage, step, total, detail });
}
