/** Opening a user's file for positioned reads: a missing or unreadable file is a one-line FileFormatError. */
import fs from 'node:fs';
import { FileFormatError } from '../errors.js';

export function openForReading(path: string): number {
  try {
    return fs.openSync(path, 'r');
  } catch (e) {
    throw new FileFormatError(path, `cannot open: ${(e as NodeJS.ErrnoException).code ?? String(e)}`);
  }
}
