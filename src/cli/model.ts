/** Opening the --model path with the global single-file options, reporting what was inferred. */
import { openCheckpoint, type Checkpoint } from '../components/checkpoint.js';
import type { GlobalOptions } from './main.js';

export function openModel(path: string, g: GlobalOptions): Checkpoint {
  const ck = openCheckpoint(path, { sdVersion: g.sdVersion, predictionType: g.predictionType });
  if (!g.quiet) for (const w of ck.warnings) process.stderr.write(`warning: ${w}\n`);
  return ck;
}
