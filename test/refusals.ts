/**
 * Assertions on the one-line errors a user sees for bad input (src/errors.ts): the whole message word for word, or
 * its file and a pattern. Shared by the format, key-map and config tests.
 */
import assert from 'node:assert/strict';
import { FileFormatError, InputError } from '../src/errors.js';

/** fn throws a FileFormatError whose whole message (file and key included) is exactly `message`. */
export function refused(fn: () => unknown, message: string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
    assert.equal(e.message, message);
    return true;
  });
}

/** fn throws a one-line FileFormatError naming `file`, whose message matches `re`. */
export function refusedMatching(fn: () => unknown, file: string, re: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FileFormatError, `expected FileFormatError, got ${String(e)}`);
    assert.equal(e.file, file);
    assert.ok(!e.message.includes('\n'), `multi-line message: ${e.message}`);
    assert.match(e.message, re);
    return true;
  });
}

/** fn throws a FileFormatError for file `f` and `key`, reading `<f> [<key>]: <message>`. */
export const fileError = (fn: () => unknown, f: string, message: string, key?: string): void => assert.throws(fn,
  (e: unknown) => e instanceof FileFormatError && e.file === f && e.key === key && e.message === `${f}${key !== undefined ? ` [${key}]` : ''}: ${message}`, message);

/** fn throws an InputError (a bad flag or option value) with exactly this message. */
export const inputError = (fn: () => unknown, message: string): void =>
  assert.throws(fn, (e: unknown) => e instanceof InputError && e.message === message, message);
