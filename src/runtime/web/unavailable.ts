/**
 * Node modules the browser build never needs on its paths (graph caches, weight mirrors, LoRA
 * fingerprints, sharp's image codecs: the demo decodes and encodes images with the browser's own).
 * Each stands in for its module so the shared code imports resolve; a call names what is missing.
 */
export function unavailable(what: string): never {
  throw new Error(`${what} is not available in the browser build of visprompt`);
}

/** node:crypto */
export const crypto = { createHash: (): never => unavailable('node:crypto createHash'), randomUUID: (): string => globalThis.crypto.randomUUID() };

/** node:os */
export const os = { cpus: (): { model: string }[] => [], tmpdir: (): string => '/tmp', homedir: (): string => '/', EOL: '\n', platform: (): string => 'browser' };

/** node:zlib */
export function inflateSync(): never { return unavailable('node:zlib inflateSync'); }

/** sharp (decoding and encoding images) */
export function sharp(): never { return unavailable('sharp (image files; pass decoded RGB pixels)'); }
