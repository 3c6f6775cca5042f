/** A progress bar on stderr per pipeline stage (quiet with --quiet or when stderr is not a terminal and CI asks). */
import cliProgress from 'cli-progress';
import type { ProgressEvent } from '../pipelines/progress.js';

const LABELS: Record<string, string> = { load: 'loading model', encode: 'encoding', denoise: 'denoising', invert: 'inverting', decode: 'decoding', reference: 'reference', embed: 'embedding', train: 'training', pno: 'PNO' };

export class ProgressReporter {
  private bar: cliProgress.SingleBar | undefined;
  private stage = '';

  constructor(private readonly quiet: boolean) {}

  readonly onProgress = (e: ProgressEvent): void => {
    if (this.quiet) return;
    if (e.stage !== this.stage) {
      this.bar?.stop();
      this.stage = e.stage;
      this.bar = new cliProgress.SingleBar({
        format: `${(LABELS[e.stage] ?? e.stage).padEnd(12)} {bar} {value}/{total} | {duration_formatted} elapsed | eta {eta_formatted}{detail}`,
        stream: process.stderr,
        hideCursor: true,
        noTTYOutput: true,
        notTTYSchedule: 2000,
      }, cliProgress.Presets.shades_classic);
      this.bar.start(e.total, e.step, { detail: e.detail ? ` | ${e.detail}` : '' });
    } else {
      this.bar?.setTotal(e.total);
      this.bar?.update(e.step, { detail: e.detail ? ` | ${e.detail}` : '' });
    }
    if (e.step >= e.total) { this.bar?.stop(); this.bar = undefined; this.stage = ''; }
  };

  done(): void { this.bar?.stop(); this.bar = undefined; }

  warn(msg: string): void {
    this.bar?.stop();
    this.bar = undefined;
    this.stage = '';
    process.stderr.write(`warning: ${msg}\n`);
  }
}
