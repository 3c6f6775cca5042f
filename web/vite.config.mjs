// The web UI: plain TypeScript + CSS built by Vite into dist/web, which `visprompt serve` serves at /.
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
export default {
  root: here,
  base: './',
  build: { outDir: path.resolve(here, '../dist/web'), emptyOutDir: true, target: 'es2022' },
  server: { proxy: { '/api': 'http://127.0.0.1:7860', '/sdapi': 'http://127.0.0.1:7860', '/openapi.json': 'http://127.0.0.1:7860' } },
};
