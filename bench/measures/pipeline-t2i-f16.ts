/**
 * pipeline_t2i_f16: the whole pipeline from an F16 diffusers folder (as most published SD 1.5 checkpoints),
 * no graph-cache folder: openCheckpoint + textToImage in a fresh child; `ratio` = peak RSS / the float32
 * bytes of the weights (target <= 1.3). The folder (random weights rounded to F16) is written first, not measured.
 */
import { writeRandomSafetensorsF16 } from '../f16-weights.js';
import type { Measure } from '../harness.js';
import { describeFolderPipeline, folderJobs, pipelineDiskBench, type FolderKind } from './pipeline-t2i-disk.js';

const F16: FolderKind = {
  name: 'pipeline_t2i_f16',
  write: (file, table) => writeRandomSafetensorsF16(file, table),
  how: (px, steps) => `diffusers folder of F16 .safetensors, random SD 1.5 weights, no graph cache) + textToImage ${px}x${px}, ${steps} DDIM steps, CFG 7.5, configureEngine({ lowMemory: true }); weights_mib = their float32 bytes`,
};

export const pipelineT2iF16: Measure = { name: F16.name, ratioTarget: 1.3, run: pipelineDiskBench(F16), jobs: folderJobs(F16), describe: describeFolderPipeline };
