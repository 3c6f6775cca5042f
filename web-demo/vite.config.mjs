// The browser demo (visprompt in the browser, no server): a static page built by Vite into
// dist/web-demo; `npm run build` builds it. The library code runs in a module worker.
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { webRuntimeAliases } from './aliases.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export default {
  root: here,
  base: './',
  resolve: { alias: webRuntimeAliases },
  worker: { format: 'es' },
  build: { outDir: path.resolve(here, '../dist/web-demo'), emptyOutDir: true, target: 'es2022', chunkSizeWarningLimit: 4096 },
  optimizeDeps: { exclude: ['onnxruntime-web'] },
};
