/**
 * Node globals the shared code uses (Buffer for byte handling in the file readers, a minimal
 * `process`), installed before any library module runs: import this module first.
 */
import { Buffer } from 'buffer';

const g = globalThis as unknown as { Buffer?: unknown; process?: unknown };
g.Buffer ??= Buffer;
g.process ??= { env: {}, pid: 1, platform: 'browser', argv: [], versions: {}, cwd: (): string => '/', emitWarning: (): void => {} };
