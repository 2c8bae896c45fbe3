/**
 * Whether a thrown value is an Error, including ones from another realm
 * (Node's own socket and file-system errors are not `instanceof Error` inside
 * a vm context such as Jest's ESM runner).
 */
export function isError(err: unknown): err is Error {
  return (
    err instanceof Error ||
    (typeof err === 'object' && err !== null && typeof (err as Error).message === 'string')
  );
}

/** The message of a thrown value, for embedding in a CdcError message. */
export function errorMessage(err: unknown): string {
  return isError(err) ? err.message : String(err);
}
