// What to say about a caught value in a log line or an error message: an Error's message, anything else as text.

/** The message of an Error, or the value itself as a string. */
export function errorText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
