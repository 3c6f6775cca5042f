// The library's browser build: src/runtime/web/index.ts (the same pipelines and graph code as Node, with the
// Node-only modules swapped, see aliases.mjs) as one ES module, dist/browser/visprompt.js, exported as
// `visprompt/browser`. onnxruntime-web stays an import for the application's bundler to resolve (it ships
// its .wasm files); run the library in a dedicated worker (tensor reads are synchronous Blob slices).
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { webRuntimeAliases } from './aliases.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
export default {
  resolve: { alias: webRuntimeAliases },
  build: {
    outDir: path.resolve(here, '../dist/browser'), emptyOutDir: true, target: 'es2022', minify: false,
    lib: { entry: path.resolve(here, '../src/runtime/web/index.ts'), formats: ['es'], fileName: () => 'visprompt.js' },
    rollupOptions: { external: [/^onnxruntime-web(\/.*)?$/] },
  },
};
