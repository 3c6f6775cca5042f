/**
 * Whether this process's WebGPU adapter is a software one (SwiftShader): graph construction (software-gpu.ts)
 * and session options (session.ts) then favour kernels that do not synchronise workgroups.
 */

/** The env names Vulkan drivers are picked by (VK_DRIVER_FILES is the newer loader's name for VK_ICD_FILENAMES). */
const DRIVER_VARS = ['VK_DRIVER_FILES', 'VK_ICD_FILENAMES'] as const;

type Env = Readonly<Record<string, string | undefined>>;

/**
 * VISPROMPT_WEBGPU_KERNELS=naive|tiled decides; else true when the Vulkan driver list (VK_DRIVER_FILES, else
 * VK_ICD_FILENAMES) names SwiftShader manifests only. No process environment (the browser build): false.
 */
export function softwareAdapter(env: Env | undefined = (globalThis as { process?: { env?: Env } }).process?.env): boolean {
  if (!env) return false;
  const forced = env.VISPROMPT_WEBGPU_KERNELS;
  if (forced === 'naive') return true;
  if (forced === 'tiled') return false;
  for (const name of DRIVER_VARS) {
    const files = (env[name] ?? '').split(':').filter(Boolean);
    if (files.length) return files.every((f) => /swiftshader/i.test(f));
  }
  return false;
}
