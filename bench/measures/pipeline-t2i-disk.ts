/**
 * pipeline_t2i_disk: pipeline_t2i from a real diffusers folder of F32 .safetensors (random weights streamed
 * to a temp folder first, write_s, not measured): openCheckpoint + textToImage in a fresh child, F32 weights
 * read by ORT from the files; build_s = UNet build; folder deleted afterwards.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../../src/components/checkpoint.js';
import { configureEngine } from '../../src/graph/session.js';
import { fmtGiB, fmtS, log, mib, now, ortOptionsField, peakRssMib, round, sessionsField, spawnMeasure, timedTextToImage, timeSessionCreates, verdict, type Job, type Measure, type Options, type Result } from '../harness.js';
import { writeRandomSafetensors, type WeightTable } from '../random-weights.js';
import { writeRandomCheckpoint } from '../sd15.js';

const TARGET = 1.3;

/** Environment variable by which the parent hands the child its model folder (and `${ENV_MODEL_DIR}_PARAMS` the parameter count). */
export const ENV_MODEL_DIR = 'VISPROMPT_BENCH_MODEL_DIR';

/** How a folder measure's weights are stored: the writer, and what the note says. */
export interface FolderKind {
  name: string;
  write: (file: string, table: WeightTable) => number;
  /** The note's opening: the stored weights and how they reach ORT. */
  how: (px: number, steps: number) => string;
  /** The folder's model (default: SD 1.5) and its writer; `pxScale` multiplies --size (SDXL: 2, 1024 px at the default). */
  model?: { family: string; pxScale: number; write: (dir: string, writeFile: (file: string, table: WeightTable) => number) => { bytes: number; parameters: number } };
}

const F32: FolderKind = { name: 'pipeline_t2i_disk', write: writeRandomSafetensors, how: (px, steps) => `diffusers folder of F32 .safetensors, random SD 1.5 weights) + textToImage ${px}x${px}, ${steps} DDIM steps, CFG 7.5, configureEngine({ lowMemory: true }); F32 weights reach ORT by (file, offset), not through JS` };

/** The child: openCheckpoint(folder) + textToImage in low-memory mode, no graph cache. */
export const pipelineDiskBench = (kind: FolderKind) => async (opts: Options): Promise<Result> => {
  const name = kind.name;
  const dir = process.env[ENV_MODEL_DIR];
  if (!dir) throw new Error(`${name}: the parent passes the model folder in ${ENV_MODEL_DIR}`);
  const creates = timeSessionCreates();
  configureEngine({ lowMemory: true });
  const scaled = { ...opts, size: opts.size * (kind.model?.pxScale ?? 1) };
  log(`${name}: openCheckpoint(${dir}) + text-to-image ${scaled.size * 8}x${scaled.size * 8}, ${opts.steps} steps, CFG 7.5, low-memory mode`);
  const { px, steps, denoiseStart, common } = await timedTextToImage(name, scaled, () => openCheckpoint(dir));
  // The UNet's session: the one fed `sample`, created after the denoise loop started.
  const unetCreate = creates.find((c) => c.inputs.includes('sample') && c.start >= denoiseStart);
  const unetBuild = unetCreate ? unetCreate.end - denoiseStart : null;
  const parameters = Number(process.env[`${ENV_MODEL_DIR}_PARAMS`] ?? '0');
  const weightsMib = mib(parameters * 4);
  const peak = peakRssMib();
  return {
    measure: name,
    ...common,
    peak_rss_mib: Math.round(peak), build_s: unetBuild === null ? null : round(unetBuild),
    weights_mib: Math.round(weightsMib),
    ratio: round(peak / weightsMib),
    ...(opts.size === 64 ? { target_ratio: TARGET } : {}),
    ...(unetCreate ? { unet_create_s: round(unetCreate.end - unetCreate.start) } : {}),
    sessions: sessionsField(creates),
    ...ortOptionsField(opts),
    note: `openCheckpoint(${kind.how(px, steps)}; wall time from openCheckpoint to the image (cold, page cache warm from the write); build_s = UNet build (denoise start -> UNet session created: graph + ORT create); write_s = writing the folder (not in the measure); ratio = peak_rss_mib / weights_mib`,
  };
};

/** The parent's job: write the folder (not measured), run the child on it, delete the folder. */
export const folderJobs = (kind: FolderKind) => (): Job[] => {
  const m = kind.name;
  return [{
    measure: m, label: {},
    async run(argv) {
      const family = kind.model?.family ?? 'SD 1.5';
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), `visprompt-bench-${family.replace(/\W/g, '').toLowerCase()}-`));
      try {
        log(`${m}: writing the random ${family} checkpoint to ${dir} (streamed, not measured)`);
        const t0 = now();
        const { bytes, parameters } = (kind.model?.write ?? writeRandomCheckpoint)(dir, kind.write);
        const writeS = now() - t0;
        log(`${m}: wrote ${fmtGiB(mib(bytes))} in ${fmtS(writeS)}`);
        const r = await spawnMeasure(m, argv, { env: { [ENV_MODEL_DIR]: dir, [`${ENV_MODEL_DIR}_PARAMS`]: String(parameters) } });
        return { ...r, write_s: round(writeS), write_mib: Math.round(mib(bytes)) };
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    },
  }];
};

export function describeFolderPipeline(r: Result): string {
  const ph = r.phases_s ?? {};
  return `${r.measure} ${fmtS(r.median_s)} cold (open ${fmtS(ph.open_to_encode ?? 0)}, encode ${fmtS(ph.encode ?? 0)}, denoise ${fmtS(ph.denoise ?? 0)} [steps ${(r.step_times_s ?? []).map(fmtS).join(', ')}], decode ${fmtS(ph.decode ?? 0)}); ` +
    `UNet build ${r.build_s === null ? '-' : fmtS(r.build_s)} (ORT create ${fmtS(r.unet_create_s ?? 0)}); peak RSS ${fmtGiB(r.peak_rss_mib)} = ${r.ratio!.toFixed(2)}x the fp32 weights (${fmtGiB(r.weights_mib!)})${verdict(r.ratio!, r.target_ratio)}; folder written in ${fmtS(r.write_s ?? 0)} (not measured)${r.finite === false ? ' [output not finite!]' : ''}`;
}

export const pipelineT2iDisk: Measure = { name: F32.name, ratioTarget: TARGET, run: pipelineDiskBench(F32), jobs: folderJobs(F32), describe: describeFolderPipeline };
