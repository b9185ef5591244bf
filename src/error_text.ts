// What to say about a caught value in a log line or an error message: an Error's message, anything else as text.

/** The message of an Error, or the value itself as a string. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** For logging a failure that is a bug: an Error's stack (its message if it has none), anything else as text. */
export function errorDetail(e: unknown): string {
  return e instanceof Error ? (e.stack ?? e.message) : String(e);
}
