// Mutation testing (StrykerJS, command runner): `npm run mutate`. Outside CI: every mutant re-runs the tests.
// Stryker inserts all mutants into one instrumented copy of src/ (mutant switching), compiles it once with
// tsc (`mutate:build`), then runs STRYKER_TEST_COMMAND once per mutant with __STRYKER_ACTIVE_MUTANT__ set.
// A slice: STRYKER_MUTATE="src/methods/adain.ts,src/pipelines/h-space.ts" STRYKER_TEST_COMMAND="node --test dist/test/hand-derived.test.js" npm run mutate
const list = (v) => v?.split(',').map((s) => s.trim()).filter(Boolean);

export default {
  testRunner: 'command',
  commandRunner: { command: process.env.STRYKER_TEST_COMMAND ?? 'node --test --test-concurrency=1 dist/test/' },
  buildCommand: 'npm run -s mutate:build',
  // The numeric folders: methods, schedulers, pipelines, io (add new numeric folders here).
  mutate: list(process.env.STRYKER_MUTATE) ?? ['src/methods/**/*.ts', 'src/schedulers/**/*.ts', 'src/pipelines/**/*.ts', 'src/io/**/*.ts'],
  // The command runner cannot tell which tests cover a mutant: each mutant runs the whole command.
  coverageAnalysis: 'off',
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  // A mutant that loops forever is cut off soon after a normal run's time (it counts as detected).
  timeoutMS: Number(process.env.STRYKER_TIMEOUT_MS ?? 15_000),
  timeoutFactor: 1.5,
  ignorePatterns: ['reports', 'out', 'test-output', 'web/dist', '.stryker-tmp'],
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: 'reports/mutation/mutation.json' },
  htmlReporter: { fileName: 'reports/mutation/mutation.html' },
  thresholds: { high: 90, low: 85, break: null },
  tempDirName: '.stryker-tmp',
  cleanTempDir: true,
};
