/** Opening the --model path with the global single-file options, reporting what was inferred. */
import { openCheckpoint, type Checkpoint } from '../components/checkpoint.js';
import { useTinyVae } from '../components/vae-tiny.js';
import type { GlobalOptions } from './main.js';

export function openModel(path: string, g: GlobalOptions, o: { vaeTiny?: string } = {}): Checkpoint {
  const ck = openCheckpoint(path, { sdVersion: g.sdVersion, predictionType: g.predictionType, loras: g.loras, config: g.config, precision: g.precision });
  if (!g.quiet) for (const w of ck.warnings) process.stderr.write(`warning: ${w}\n`);
  if (o.vaeTiny !== undefined) useTinyVae(ck, o.vaeTiny); // --vae-tiny: encode and decode with TAESD
  return ck;
}
