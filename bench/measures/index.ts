/** Every measure of `npm run bench`, in the order the runner runs them (a new measure: one file + one line here). */
import type { Measure } from '../harness.js';
import { controlnetStepRatio } from './controlnet-step-ratio.js';
import { controlnetStepInt8 } from './controlnet-step-int8.js';
import { matmulCeiling } from './matmul-ceiling.js';
import { pipelineT2i } from './pipeline-t2i.js';
import { pipelineT2iDisk } from './pipeline-t2i-disk.js';
import { pipelineT2iF16 } from './pipeline-t2i-f16.js';
import { pipelineT2iSdxl } from './pipeline-t2i-sdxl.js';
import { pnoIteration } from './pno-iteration.js';
import { taesdDecodeRatioMeasure } from './taesd-decode-ratio.js';
import { textEncode } from './text-encode.js';
import { tinySd15T2i, tinySd21T2i } from './tiny-t2i.js';
import { tinyUnetStepDevices } from './tiny-unet-step-devices.js';
import { unetStep } from './unet-step.js';
import { unetStepSdxl } from './unet-step-sdxl.js';
import { unetStepInt8 } from './unet-step-int8.js';
import { vaeDecodeInt8 } from './vae-decode-int8.js';
import { vaeDecodeMeasure } from './vae-decode.js';
import { varyStepRatioMeasure } from './vary-step-ratio.js';
import { unetRowsRatioMeasure } from './unet-rows-ratio.js';

export const MEASURES: readonly Measure[] = [
  // the contract's measures
  matmulCeiling, unetStep, vaeDecodeMeasure, textEncode,
  // whole pipeline, and ratios against the plain CFG step
  pipelineT2i, varyStepRatioMeasure, unetRowsRatioMeasure, controlnetStepRatio, taesdDecodeRatioMeasure,
  // --precision int8 against float32 (issue 15)
  unetStepInt8, controlnetStepInt8, vaeDecodeInt8,
  // from files
  pipelineT2iDisk, pipelineT2iF16, pnoIteration,
  // the tiny test models
  tinySd15T2i, tinySd21T2i,
  // the tiny UNet step on cpu / webgpu / cuda, whichever are at hand (scripts/gpu-check.sh)
  tinyUnetStepDevices,
  // SDXL at twice the latent size of --size (default 128 = 1024x1024): heavy, about 10 GiB of weights
  unetStepSdxl, pipelineT2iSdxl,
];
