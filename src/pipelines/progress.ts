/** Progress and cancellation, reported by pipeline loops and shown by the CLI / server. */
import type { RGBImage } from '../io/image.js';

export interface ProgressEvent {
  /** e.g. 'load', 'encode', 'denoise', 'invert', 'decode' */
  readonly stage: string;
  readonly step: number;
  readonly total: number;
  /** A short status shown beside the bar (e.g. the current loss). */
  readonly detail?: string;
  /** A cheap decoded preview of the image being denoised (with --preview-every / `preview` options). */
  readonly preview?: PreviewImages;
}

/** Preview images after a denoising step, one per generated image. */
export interface PreviewImages {
  /** Denoising steps done (1-based), of `total`. */
  readonly step: number;
  readonly images: readonly RGBImage[];
  /** What was decoded: the step's prediction of the clean latents (x0), or the current noisy latents. */
  readonly source: 'x0' | 'latents';
  /** How: the tiny VAE (full size), a linear latent-to-RGB map (latent size), or pixels as they are (pixel-space models). */
  readonly decoder: 'tiny-vae' | 'latent-rgb' | 'pixels';
}

export interface RunControl {
  onProgress?: (e: ProgressEvent) => void;
  signal?: AbortSignal;
}

export function report(ctl: RunControl | undefined, stage: string, step: number, total: number, detail?: string): void {
  ctl?.signal?.throwIfAborted();
  ctl?.onProgress?.(detail === undefined ? { stage, step, total } : { stage, step, total, detail });
}
