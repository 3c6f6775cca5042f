/** --preview-every: preview PNGs written next to --out as the progress events carrying them arrive. */
import path from 'node:path';
import { writePNG } from '../io/image.js';
import type { ProgressEvent } from '../pipelines/progress.js';
import { ensureDir, numberedPaths } from './outputs.js';

/** `a.png` -> `a.preview-step005.png` (`a.preview-step005-0.png`, ... for several images). */
export function previewPaths(out: string, step: number, k: number): string[] {
  const ext = path.extname(out) || '.png';
  const stem = out.slice(0, out.length - path.extname(out).length);
  return numberedPaths(`${stem}.preview-step${String(step).padStart(3, '0')}${ext}`, k);
}

export class PreviewWriter {
  private pending: Promise<void>[] = [];
  readonly written: string[] = [];

  constructor(private readonly out: string) {}

  /** Chain after another progress listener (the progress bar). */
  listener(next: (e: ProgressEvent) => void): (e: ProgressEvent) => void {
    return (e) => {
      next(e);
      const p = e.preview;
      if (!p) return;
      const files = previewPaths(this.out, p.step, p.images.length);
      ensureDir(this.out);
      p.images.forEach((im, i) => {
        this.pending.push(writePNG(files[i]!, im, { Software: 'visprompt', parameters: JSON.stringify({ preview_step: p.step, source: p.source, decoder: p.decoder }) }));
        this.written.push(files[i]!);
      });
    };
  }

  /** Wait for the files (write errors surface here). */
  async flush(): Promise<string[]> {
    await Promise.all(this.pending);
    this.pending = [];
    return this.written;
  }
}
