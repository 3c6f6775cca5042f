/**
 * Job events inside the server process: progress (step, total, ETA, optional preview) and status
 * changes, fanned out to Server-Sent Event streams and to callers waiting for a job to finish.
 */
import { EventEmitter } from 'node:events';
import type { ProgressEvent } from '../index.js';
import { encodePNG } from '../io/image.js';
import type { JobRecordT } from './schemas.js';
import { TERMINAL } from './store.js';

export interface ProgressUpdate {
  stage: string; step: number; total: number; detail?: string;
  /** Seconds left in this stage, from its pace so far. */
  etaSeconds?: number;
  /** data:image/png;base64 preview of the current latents (tiny-VAE preview), when the pipeline sends one. */
  preview?: string;
}

export type JobEvent = { id: string; type: 'progress'; progress: ProgressUpdate } | { id: string; type: 'status'; record: JobRecordT };

export class JobEvents extends EventEmitter<{ event: [JobEvent] }> {
  /** The latest progress of each running job (for polling clients and /sdapi/v1/progress). */
  readonly latest = new Map<string, ProgressUpdate>();

  constructor() { super(); this.setMaxListeners(0); }

  progress(id: string, progress: ProgressUpdate): void {
    this.latest.set(id, { ...this.latest.get(id), ...progress, preview: progress.preview ?? this.latest.get(id)?.preview });
    this.emit('event', { id, type: 'progress', progress });
  }

  status(record: JobRecordT): void {
    if (TERMINAL.includes(record.status)) this.latest.delete(record.id);
    this.emit('event', { id: record.id, type: 'status', record });
  }

  /** Resolves with the record once the job reaches a final status. */
  waitFor(id: string, current: () => JobRecordT | undefined): Promise<JobRecordT> {
    return new Promise((resolve) => {
      const on = (e: JobEvent): void => {
        if (e.id === id && e.type === 'status' && TERMINAL.includes(e.record.status)) { this.off('event', on); resolve(e.record); }
      };
      this.on('event', on);
      const now = current();
      if (now && TERMINAL.includes(now.status)) { this.off('event', on); resolve(now); }
    });
  }
}

/**
 * Turns pipeline progress events into updates with an ETA, throttled (every stage change and last
 * step, otherwise at most every `everyMs`); previews are encoded to PNG data URLs.
 */
export function progressTracker(send: (p: ProgressUpdate) => void, everyMs = 150): (e: ProgressEvent) => void {
  let stage = '', stageStart = 0, last = 0;
  return (e) => {
    const now = Date.now();
    if (e.stage !== stage) { stage = e.stage; stageStart = now; last = 0; }
    const force = e.step === 0 || e.step >= e.total || e.preview !== undefined;
    if (!force && now - last < everyMs) return;
    last = now;
    const etaSeconds = e.step > 0 ? ((now - stageStart) / e.step) * (e.total - e.step) / 1000 : undefined;
    const u: ProgressUpdate = { stage: e.stage, step: e.step, total: e.total, ...(e.detail ? { detail: e.detail } : {}), ...(etaSeconds !== undefined ? { etaSeconds } : {}) };
    const preview = e.preview?.images[0];
    if (preview) {
      void encodePNG(preview).then((png) => send({ ...u, preview: `data:image/png;base64,${png.toString('base64')}` }), () => send(u));
    } else send(u);
  };
}
