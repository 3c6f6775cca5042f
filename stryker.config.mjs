// Mutation testing (StrykerJS): `npm run mutate` runs scripts/mutate.mjs, which runs this config once per slice
// (a folder and the test files that exercise it) and merges the scores. Outside CI: it is slow.
// Stryker inserts all mutants into one instrumented copy of src/ (mutant switching) and compiles it once with tsc
// (`mutate:build`). Default runner: the tap runner, one `node <test file>` process per file (node:test prints TAP
// when stdout is not a terminal), with coverageAnalysis perTest: the dry run records which mutants each test FILE
// reaches, so a mutant re-runs only the files that reach it (a scheduler mutant never runs the UNet tests).
// Env (set by scripts/mutate.mjs; usable by hand):
//   STRYKER_MUTATE       comma-separated globs to mutate (default: the four numeric folders)
//   STRYKER_TEST_FILES   comma-separated compiled test files for the tap runner (default: every dist/test file)
//   STRYKER_TEST_COMMAND use the command runner instead (no coverage analysis: each mutant runs the whole command)
//   STRYKER_REPORT       report base name under reports/mutation/ (default: mutation)
//   STRYKER_CONCURRENCY  test processes at once (default 1: the machine is shared)
const list = (v) => v?.split(',').map((s) => s.trim()).filter(Boolean);
const command = process.env.STRYKER_TEST_COMMAND;
const report = process.env.STRYKER_REPORT ?? 'mutation';

export default {
  ...(command
    ? { testRunner: 'command', commandRunner: { command }, coverageAnalysis: 'off' }
    : {
        testRunner: 'tap',
        plugins: ['@stryker-mutator/tap-runner'],
        tap: { testFiles: list(process.env.STRYKER_TEST_FILES) ?? ['dist/test/*.test.js'], forceBail: true },
        coverageAnalysis: 'perTest',
      }),
  buildCommand: 'npm run -s mutate:build',
  // The numeric folders: methods, schedulers, pipelines, io (add new numeric folders here and in scripts/mutate.mjs).
  mutate: list(process.env.STRYKER_MUTATE) ?? ['src/methods/**/*.ts', 'src/schedulers/**/*.ts', 'src/pipelines/**/*.ts', 'src/io/**/*.ts'],
  concurrency: Number(process.env.STRYKER_CONCURRENCY ?? 1),
  // A mutant that loops forever is cut off soon after its tests' normal time (it counts as detected).
  timeoutMS: Number(process.env.STRYKER_TIMEOUT_MS ?? 10_000),
  timeoutFactor: 1.5,
  // Re-runs only mutants whose code or covering tests changed since the slice's last run.
  incremental: process.env.STRYKER_INCREMENTAL !== '0',
  incrementalFile: `reports/mutation/${report}.incremental.json`,
  ignorePatterns: ['reports', 'out', 'test-output', 'web/dist', '.stryker-tmp', 'dist'],
  reporters: ['clear-text', 'progress', 'json', 'html'],
  jsonReporter: { fileName: `reports/mutation/${report}.json` },
  htmlReporter: { fileName: `reports/mutation/${report}.html` },
  thresholds: { high: 90, low: 85, break: null },
  // One sandbox folder per report, so two slices can run at once without one's clean-up removing the other's.
  tempDirName: `.stryker-tmp/${report}`,
  cleanTempDir: true,
};
