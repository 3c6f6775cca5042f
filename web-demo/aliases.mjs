// The browser build's runtime seam: Node-only modules the shared library code imports, and what the
// browser gets instead (src/runtime/web). The library's own files (src/graph, src/models, src/pipelines)
// are bundled unchanged.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const web = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../src/runtime/web');
const to = (f) => path.join(web, f);

export const webRuntimeAliases = [
  { find: /^onnxruntime-node$/, replacement: to('ort.ts') },
  { find: /^(node:)?fs$/, replacement: to('fs.ts') },
  { find: /^(node:)?path$/, replacement: to('path.ts') },
  { find: /^(node:)?url$/, replacement: to('url.ts') },
  { find: /^(node:)?crypto$/, replacement: to('crypto.ts') },
  { find: /^(node:)?os$/, replacement: to('os.ts') },
  { find: /^(node:)?zlib$/, replacement: to('zlib.ts') },
  { find: /^sharp$/, replacement: to('sharp.ts') },
];
