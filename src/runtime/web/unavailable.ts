/**
 * Node modules the browser build never needs on its paths (graph caches, weight mirrors, sharp's image
 * codecs: the demo decodes and encodes images with the browser's own); crypto's digests are real (hash.ts).
 * Each stands in for its module so the shared code imports resolve; a call names what is missing.
 */
import { createHash } from './hash.js';

export function unavailable(what: string): never {
  throw new Error(`${what} is not available in the browser build of visprompt`);
}

/** node:crypto: the digests the library keys caches with (sha1, sha256; hash.ts). */
export const crypto = { createHash, randomUUID: (): string => globalThis.crypto.randomUUID() };

/** node:os */
export const os = { cpus: (): { model: string }[] => [], tmpdir: (): string => '/tmp', homedir: (): string => '/', EOL: '\n', platform: (): string => 'browser' };

/** node:zlib */
export function inflateSync(): never { return unavailable('node:zlib inflateSync'); }

/** sharp (decoding and encoding images) */
export function sharp(): never { return unavailable('sharp (image files; pass decoded RGB pixels)'); }
