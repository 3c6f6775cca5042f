#!/usr/bin/env node
// `npm run mutate [-- slice ...]`: mutation testing of the numeric folders, one Stryker run per slice, then one
// merged score. A slice is a set of source files plus ONLY the test files that exercise them; within a slice
// the tap runner's per-test-file coverage re-runs, for each mutant, only the files that reach it
// (stryker.config.mjs). Running the whole suite per mutant would take days on a small machine.
//   node scripts/mutate.mjs                 every slice, then the merged report
//   node scripts/mutate.mjs schedulers io   those slices, then the merged report (over every slice run so far)
//   node scripts/mutate.mjs --merge         only merge the slice reports already in reports/mutation/
// Each slice writes reports/mutation/<slice>.{json,html} and an incremental file (a re-run only tests mutants
// whose code or tests changed; STRYKER_INCREMENTAL=0 forces a full run). The merge writes
// reports/mutation/mutation.json (mutation-testing-report-schema, all slices) and summary.md (scores per slice
// and folder, every surviving mutant). Concurrency 1 by default (STRYKER_CONCURRENCY to change).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

const t = (...names) => names.map((n) => `dist/test/${n}.test.js`);

// Test files per slice: those that import the slice's files (directly or through the pipelines), fast ones first.
// The slow model-running files are left out where faster ones pin the same code; add a file here when a
// surviving mutant shows a gap that only it covers.
export const SLICES = {
  // Pure scheduler arithmetic (milliseconds a file): the defaults / options / multistep files pin what the
  // trajectory goldens never take. The CLI part of the scheduler tests is schedulers-cli.test (not here: it spawns).
  schedulers: {
    mutate: ['src/schedulers/**/*.ts', '!src/schedulers/scheduler-config.ts'],
    tests: t('scheduler-defaults', 'scheduler-options', 'scheduler-multistep', 'config-reader', 'schedulers', 'ddim-pieces',
      'schedulers-config', 'schedulers-trajectory', 'hand-derived'),
  },
  'schedulers-config': {
    mutate: ['src/schedulers/scheduler-config.ts', 'src/io/config.ts', 'src/io/python-json.ts'],
    tests: t('config-reader', 'scheduler-defaults', 'scheduler-options', 'scheduler-multistep', 'schedulers-config', 'schedulers-trajectory'),
  },
  'methods-numeric': {
    mutate: ['src/methods/adain.ts', 'src/methods/vcf/**/*.ts', 'src/methods/h-space.ts', 'src/methods/delta-block.ts',
      'src/methods/asyrp-training.ts', 'src/methods/clip-guidance.ts'],
    // h-space-edit: the h-space hook and the DeltaBlock file reader by hand (hspace.test runs the tiny UNet: not here).
    tests: t('h-space-edit', 'vcf-aligner-file', 'vcf-objective-options', 'hand-derived', 'vcf', 'clip-guidance-towers', 'pno-pieces', 'asyrp-objective-key', 'asyrp-training', 'pno'),
  },
  'methods-attention': {
    mutate: ['src/methods/baselines.ts', 'src/methods/reference-attention.ts', 'src/methods/indetail-ip.ts',
      'src/methods/method.ts', 'src/methods/index.ts'],
    // Fast files only (graph-level and object-level pins, seconds in all): the model-running files (vary,
    // vary-regression, indetail-ip-official, style-aligned: ~30 s each) pin the same against official goldens.
    tests: t('methods-options', 'reference-attention', 'bug-bank-pins'),
  },
  'io-formats': {
    mutate: ['src/io/safetensors.ts', 'src/io/f32-mirror.ts', 'src/io/open-file.ts', 'src/io/zip.ts', 'src/io/pickle.ts', 'src/io/torch-checkpoint.ts', 'src/io/tensor-file.ts',
      'src/io/weights.ts'],
    // Hand-built safetensors / zip / pickle / torch layouts first (ms each); pickle.test (torch-made fixtures) last.
    // Its slow checks (whole-model .bin folders, the 10M-visit memo DAG) live in pickle-pipeline.test, not here.
    tests: t('safetensors-header', 'zip-directory', 'pickle-opcodes', 'torch-layout', 'weights-source', 'io-format-edges', 'f32-mirror-signals', 'safetensors', 'pickle'),
  },
  'io-images': {
    mutate: ['src/io/image.ts', 'src/io/pil-resize.ts', 'src/io/vae-image-processor.ts', 'src/io/clip-image-processor.ts', 'src/io/torch-nearest.ts'],
    // png-text / pil-resize-edges / image-processors: byte-exact PNG chunks, Pillow 9.4 CRCs, config forms (ms each);
    // torch-nearest: torch's nearest indices in float32 (eval-baselines pins them too, but runs models); image-edges:
    // 16-bit / grey+alpha decoding, the 8192 limit, Pillow resize defaults and box edges, CLIP defaults (ms).
    tests: t('torch-nearest', 'image-edges', 'png-text', 'pil-resize-edges', 'pil-resize-boxes', 'clip-image-processor-edges', 'image-processors', 'image'),
  },
  'io-tokenizer': {
    // caption-jsonl: the other text input of src/io (training / benchmark caption files), a few ms.
    mutate: ['src/io/clip-tokenizer.ts', 'src/io/caption-jsonl.ts'],
    tests: t('tokenizer-edges', 'caption-jsonl', 'tokenizer-config', 'tokenizer'),
  },
  'io-keymaps': {
    mutate: ['src/io/original-checkpoint.ts', 'src/io/original-keymap.ts', 'src/io/original-architecture.ts', 'src/io/original-layout-source.ts', 'src/io/original-controlnet.ts'],
    // reads / layouts / writer / inference / options: hand-built files and sparse headers (ms each), before the model-running files.
    tests: t('original-checkpoint-reads', 'original-controlnet-layouts', 'original-layout-writer', 'original-controlnet-header', 'original-checkpoint-inference',
      'original-checkpoint-options', 'single-file-keymap', 'original-checkpoint', 'original-controlnet'),
  },
  pipelines: {
    mutate: ['src/pipelines/**/*.ts'],
    // vary-loop / text-to-image-loop / h-space-loop: the sampling loops (and invert, common, progress, h-space,
    // inject) with a stand-in checkpoint, milliseconds; preview-hook / edit-loop / fuse-loop / train-aligner-loop /
    // train-attribute-pieces likewise for preview, edit, fuse, train-*; fuse-pno-loop / train-attribute-loop (seconds:
    // stand-ins around the tiny models' weights, which PNO and the Asyrp objective differentiate through); the
    // model-running files after them (each ~30 s a run: hours for the whole slice).
    tests: t('vary-loop', 'invert-pieces', 'text-to-image-loop', 'h-space-loop', 'inject-pieces', 'preview-hook', 'edit-loop', 'fuse-loop', 'train-aligner-loop',
      'train-attribute-pieces', 'hand-derived', 'bug-bank-pins', 'fuse-pno-loop', 'train-attribute-loop', 'pipelines', 'pixel', 'hspace', 'fuse', 'vary-regression',
      'train-aligner', 'train-attribute'),
  },
};

const REPORTS = 'reports/mutation';
const DETECTED = new Set(['Killed', 'Timeout']);
const UNDETECTED = new Set(['Survived', 'NoCoverage']);

function runSlice(name) {
  const s = SLICES[name];
  if (!s) throw new Error(`unknown slice ${name}; slices: ${Object.keys(SLICES).join(', ')}`);
  console.log(`\n=== slice ${name}: ${s.mutate.join(' ')}\n    tests: ${s.tests.join(' ')}`);
  const started = Date.now();
  const r = spawnSync('npx', ['stryker', 'run', 'stryker.config.mjs'], {
    stdio: 'inherit',
    env: { ...process.env, STRYKER_MUTATE: s.mutate.join(','), STRYKER_TEST_FILES: s.tests.join(','), STRYKER_REPORT: name },
  });
  console.log(`=== slice ${name}: exit ${r.status}, ${((Date.now() - started) / 60000).toFixed(1)} min`);
  return r.status === 0;
}

const score = (c) => (c.detected + c.undetected ? (100 * c.detected) / (c.detected + c.undetected) : NaN);
const count = () => ({ detected: 0, undetected: 0, killed: 0, timeout: 0, survived: 0, noCoverage: 0, errors: 0 });
function add(c, status) {
  if (DETECTED.has(status)) c.detected++;
  else if (UNDETECTED.has(status)) c.undetected++;
  else c.errors++;
  if (status === 'Killed') c.killed++;
  if (status === 'Timeout') c.timeout++;
  if (status === 'Survived') c.survived++;
  if (status === 'NoCoverage') c.noCoverage++;
}

function merge() {
  const files = {};
  const perSlice = {};
  let schema;
  for (const name of Object.keys(SLICES)) {
    const p = path.join(REPORTS, `${name}.json`);
    if (!fs.existsSync(p)) continue;
    const rep = JSON.parse(fs.readFileSync(p, 'utf8'));
    schema ??= rep;
    const c = (perSlice[name] = count());
    for (const [file, f] of Object.entries(rep.files)) {
      files[file] = f; // slices mutate disjoint files
      for (const m of f.mutants) add(c, m.status);
    }
  }
  if (!schema) { console.log('no slice reports yet'); return; }
  const perFolder = {};
  const total = count();
  const survivors = [];
  for (const [file, f] of Object.entries(files)) {
    const folder = file.split('/').slice(0, 2).join('/');
    const c = (perFolder[folder] ??= count());
    for (const m of f.mutants) {
      add(c, m.status); add(total, m.status);
      if (UNDETECTED.has(m.status)) {
        const line = f.source.split('\n')[m.location.start.line - 1]?.trim() ?? '';
        survivors.push(`${file}:${m.location.start.line}:${m.location.start.column} ${m.status} ${m.mutatorName}` +
          `${m.replacement !== undefined ? ` -> \`${m.replacement.split('\n')[0].slice(0, 80)}\`` : ''}  (\`${line.slice(0, 100)}\`)`);
      }
    }
  }
  fs.writeFileSync(path.join(REPORTS, 'mutation.json'), JSON.stringify({ ...schema, files }));
  const row = (name, c) => `| ${name} | ${score(c).toFixed(2)}% | ${c.killed} | ${c.timeout} | ${c.survived} | ${c.noCoverage} | ${c.errors} |`;
  const head = '| | score | killed | timeout | survived | no coverage | errors (not counted) |\n|---|---|---|---|---|---|---|';
  const md = [
    `# Mutation score (${new Date().toISOString()})`, '',
    `Total: **${score(total).toFixed(2)}%** detected (killed + timeout) of ${total.detected + total.undetected} valid mutants.`, '',
    '## Per slice', head, ...Object.entries(perSlice).map(([n, c]) => row(n, c)), '',
    '## Per folder', head, ...Object.entries(perFolder).sort().map(([n, c]) => row(n, c)), '',
    `## Undetected mutants (${survivors.length})`, ...survivors.map((s) => `- ${s}`), '',
  ].join('\n');
  fs.writeFileSync(path.join(REPORTS, 'summary.md'), md);
  console.log(md.split('## Undetected')[0]);
  console.log(`merged ${Object.keys(perSlice).length} slice(s) into ${REPORTS}/mutation.json and summary.md`);
}

const args = process.argv.slice(2);
if (!args.includes('--merge')) {
  const names = args.length ? args : Object.keys(SLICES);
  let ok = true;
  for (const n of names) ok = runSlice(n) && ok;
  if (!ok) process.exitCode = 1;
}
merge();
