/**
 * The Vulkan loader for ONNX Runtime's WebGPU provider (Dawn), found without LD_LIBRARY_PATH.
 *
 * Dawn opens `libvulkan.so.1` by name when the first WebGPU session starts. A machine whose only Vulkan
 * driver is the software one of Debian's `chromium` package (SwiftShader) has no system `libvulkan1`; the
 * package ships the loader beside its driver instead. glibc's dlopen answers a request by name with an
 * already loaded library of that soname, so loading that file once by its full path (and never unloading
 * it) lets Dawn find it, the way `VK_ICD_FILENAMES` alone is expected to work.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const LOADER = 'libvulkan.so.1';
/** Where Debian's chromium keeps its Vulkan loader and SwiftShader driver. */
const CHROMIUM_DIR = '/usr/lib/chromium';

/** glibc's RTLD_NODELETE (not in os.constants.dlopen): the library stays loaded after Node's dlclose. */
const RTLD_NODELETE = 0x1000;

let found: { file: string | undefined } | undefined;

/** Folders that may hold a Vulkan loader: those of the driver manifests in VK_ICD_FILENAMES, then chromium's. */
export function loaderCandidates(icdFilenames: string | undefined): string[] {
  const dirs = (icdFilenames ?? '').split(':').filter(Boolean).map((f) => path.dirname(path.resolve(f)));
  return [...new Set([...dirs, CHROMIUM_DIR])].map((d) => path.join(d, LOADER));
}

/**
 * Try to load `file` (a path, or a bare name searched as dlopen does) and keep it loaded. Node's dlopen
 * refuses a library that is not a Node addon after loading it ("did not self-register"); RTLD_NODELETE
 * keeps it in the process all the same.
 */
function loadAndKeep(file: string): boolean {
  const c = os.constants.dlopen;
  try {
    process.dlopen({ exports: {} }, file, c.RTLD_NOW | c.RTLD_GLOBAL | RTLD_NODELETE);
    return true;
  } catch (e) {
    return e instanceof Error && /self-register|init function|napi_register/i.test(e.message);
  }
}

/**
 * Once per process, before the first WebGPU session: when the system has no Vulkan loader, load the one
 * beside the driver named by VK_ICD_FILENAMES (or chromium's). Returns the file loaded, 'system', or
 * undefined when none was found (the WebGPU provider then reports that it has no adapter).
 */
export function ensureVulkanLoader(env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (process.platform !== 'linux') return 'system';
  found ??= { file: loadAndKeep(LOADER) ? 'system' : loaderCandidates(env.VK_ICD_FILENAMES).find((f) => fs.existsSync(f) && loadAndKeep(f)) };
  return found.file;
}
