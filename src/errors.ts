/**
 * Errors that describe a problem with the user's input (a bad file, a wrong
 * option). The CLI prints their message as one line without a stack trace;
 * any other exception is a bug in lmflash and is reported as such.
 */
export class LmflashError extends Error {
  override name = 'LmflashError';
}

/** Throws an LmflashError with `message` unless `condition` holds. */
export function check(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new LmflashError(typeof message === 'function' ? message() : message);
}
