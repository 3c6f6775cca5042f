/**
 * `node:url` in the browser build. Module-relative asset folders (`new URL('../assets/clip/',
 * import.meta.url)`) become virtual paths of the same name in src/runtime/web/fs.ts, where the
 * browser entry mounts the files it fetched.
 */
export function fileURLToPath(u: string | URL): string {
  return decodeURIComponent(new URL(String(u)).pathname);
}

export function pathToFileURL(p: string): URL { return new URL(`file://${p}`); }

const URLClass = globalThis.URL;
export { URLClass as URL };
export default { fileURLToPath, pathToFileURL, URL: URLClass };
