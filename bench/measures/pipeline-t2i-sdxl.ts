/**
 * pipeline_t2i_sdxl: the whole SDXL pipeline from an F32 diffusers folder of random weights (issue 10: peak
 * RSS within 1.3x the float32 weights): openCheckpoint + textToImage at 2 x --size latents (1024x1024 px by
 * default), the folder's Euler scheduler, in a fresh child. Heavy: about 14 GiB of weights written to the
 * temporary folder first (not measured), about 18 GiB of memory at the target.
 */
import type { Measure } from '../harness.js';
import { writeRandomSafetensors } from '../random-weights.js';
import { writeRandomSdxlCheckpoint } from '../sdxl.js';
import { describeFolderPipeline, folderJobs, pipelineDiskBench, type FolderKind } from './pipeline-t2i-disk.js';

const SDXL: FolderKind = {
  name: 'pipeline_t2i_sdxl',
  write: writeRandomSafetensors,
  model: { family: 'SDXL', pxScale: 2, write: writeRandomSdxlCheckpoint },
  how: (px, steps) => `diffusers folder of F32 .safetensors, random SDXL base weights: UNet, both text encoders, VAE) + textToImage ${px}x${px}, ${steps} Euler steps, CFG 7.5, configureEngine({ lowMemory: true })`,
};

export const pipelineT2iSdxl: Measure = { name: SDXL.name, ratioTarget: 1.3, run: pipelineDiskBench(SDXL), jobs: folderJobs(SDXL), describe: describeFolderPipeline };
