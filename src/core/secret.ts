import { inspect } from 'node:util';

const REDACTED = '[REDACTED]';

/**
 * A value that must never reach a log line, an error message or JSON output.
 * Only `reveal()` returns it, and only the code that hands it to a client
 * library should call that.
 */
export class Secret {
  readonly #value: string;

  constructor(value: string) {
    this.#value = value;
  }

  reveal(): string {
    return this.#value;
  }

  /** True when the secret is the empty string (e.g. a passwordless test user). */
  get isEmpty(): boolean {
    return this.#value.length === 0;
  }

  toString(): string {
    return REDACTED;
  }

  toJSON(): string {
    return REDACTED;
  }

  [inspect.custom](): string {
    return REDACTED;
  }
}
