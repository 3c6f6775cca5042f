/**
 * tiny_unet_step_devices: one CFG step of the tiny SD 1.5 test UNet (batch 2, [2, 4, 16, 16] latents) on
 * every device at hand, one child process each: cpu always; webgpu when an adapter exists (a GPU's
 * Vulkan driver, or, with VISPROMPT_SOFTWARE_GPU=1, SwiftShader from Debian's chromium); cuda when
 * onnxruntime-node's CUDA provider library is installed. For information (on SwiftShader it is a
 * correctness target, not a speed target); scripts/gpu-check.sh runs it with the parity subset.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { openCheckpoint } from '../../src/components/checkpoint.js';
import { engineDevice } from '../../src/graph/session.js';
import { TorchGenerator } from '../../src/noise/torch-generator.js';
import { hasNonFinite } from '../../src/tensor.js';
import { fmtS, log, median, now, peakRssMib, round, spawnMeasure, TINY_MODELS, type Job, type Measure, type Options, type Result } from '../harness.js';

const NAME = 'tiny_unet_step_devices';
/** Which device the child runs on (bench/bench.ts configures the engine from it). */
export const DEVICE_ENV = 'VISPROMPT_BENCH_DEVICE';
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';

/** The CUDA provider ships outside the npm package (ONNXRUNTIME_NODE_INSTALL=cuda12 npm rebuild onnxruntime-node). */
export function cudaProviderInstalled(): boolean {
  const bin = path.join(path.dirname(fileURLToPathSafe(import.meta.resolve('onnxruntime-node'))), '..', 'bin');
  const walk = (d: string): boolean => fs.existsSync(d) && fs.readdirSync(d, { withFileTypes: true }).some((e) => (e.isDirectory() ? walk(path.join(d, e.name)) : /providers_cuda/.test(e.name)));
  return walk(bin);
}

function fileURLToPathSafe(u: string): string { return u.startsWith('file:') ? new URL(u).pathname : u; }

/** The environment for a WebGPU child: SwiftShader when asked for (or when no other driver is named). */
export function webgpuEnv(): Record<string, string> {
  if (process.env.VISPROMPT_SOFTWARE_GPU !== '1' || !fs.existsSync(SWIFTSHADER_ICD)) return {};
  return {
    VK_ICD_FILENAMES: SWIFTSHADER_ICD, XDG_RUNTIME_DIR: process.env.XDG_RUNTIME_DIR ?? os.tmpdir(),
    LD_LIBRARY_PATH: [path.dirname(SWIFTSHADER_ICD), process.env.LD_LIBRARY_PATH].filter(Boolean).join(':'),
  };
}

async function run(opts: Options): Promise<Result> {
  const ck = openCheckpoint(path.join(TINY_MODELS, 'tiny-sd15'));
  const unet = ck.unet();
  const g = new TorchGenerator(0);
  const sample = { shape: [2, 4, 16, 16], data: g.randn([2, 4, 16, 16]) };
  const ehs = { shape: [2, 77, unet.config.crossAttentionDim], data: g.randn([2, 77, unet.config.crossAttentionDim]) };
  const call = (): ReturnType<typeof unet.run> => unet.run({ sample, timestep: 501, encoderHiddenStates: ehs });
  log(`${NAME} on ${engineDevice()}: first call (build + compile + run)`);
  const t0 = now();
  let r = await call();
  const first = now() - t0;
  const runs = opts.runs ?? 5;
  const times: number[] = [];
  for (let i = 0; i < runs; i++) { const t = now(); r = await call(); times.push(now() - t); }
  return {
    measure: NAME, median_s: round(median(times)), min_s: round(Math.min(...times)), gflops: null, peak_rss_mib: Math.round(peakRssMib()),
    build_s: null, first_call_s: round(first), runs, times_s: times.map((t) => round(t)), flops: null,
    finite: !hasNonFinite(r.noisePred), threads: opts.threads ?? 'default', device: engineDevice(),
    ...(engineDevice() === 'webgpu' && process.env.VK_ICD_FILENAMES?.includes('swiftshader') ? { adapter: 'SwiftShader (software)' } : {}),
    note: 'tiny-sd15 UNet, batch 2 (one CFG step), 16x16 latents; first_call_s = build + compile (WGSL kernels on webgpu) + run',
  };
}

function jobs(): Job[] {
  const devices: { device: string; env: Record<string, string> }[] = [{ device: 'cpu', env: {} }, { device: 'webgpu', env: webgpuEnv() }];
  if (cudaProviderInstalled()) devices.push({ device: 'cuda', env: {} });
  // webgpu may find no adapter: that is a result line with the error, not a failure of the bench.
  return devices.map(({ device, env }) => ({
    measure: NAME, label: { device }, expectFailure: device !== 'cpu',
    run: (argv) => spawnMeasure(NAME, argv, { env: { ...env, [DEVICE_ENV]: device } }),
  }));
}

function describe(r: Result): string {
  const where = `${String(r.device ?? '?')}${r.adapter ? ` (${String(r.adapter)})` : ''}`;
  return `${NAME} ${where.padEnd(28)} ${fmtS(r.median_s)} per step (min ${fmtS(r.min_s)}), first call ${fmtS(r.first_call_s)}${r.finite === false ? ' [output not finite!]' : ''}`;
}

export const tinyUnetStepDevices: Measure = { name: NAME, run, jobs, describe };
