/**
 * Errors that are the user's to fix (a bad file, a wrong flag, a missing key). The CLI prints their
 * message as one line and exits non-zero; anything else is a bug and keeps its stack trace.
 */
export class VispromptError extends Error {
  override readonly name: string = 'VispromptError';
}

/** A file on disk is malformed or does not fit: names the file and, where known, the key. */
export class FileFormatError extends VispromptError {
  override readonly name = 'FileFormatError';
  constructor(readonly file: string, detail: string, readonly key?: string) {
    super(`${file}${key !== undefined ? ` [${key}]` : ''}: ${detail}`);
  }
}

/** A user-supplied value (flag, option) is out of range or of the wrong kind. */
export class InputError extends VispromptError {
  override readonly name = 'InputError';
}
