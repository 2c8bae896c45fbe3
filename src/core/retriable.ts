import { CdcError } from './errors.js';

/**
 * The one table that says which MySQL and Kafka failures are worth retrying.
 * Callers never look at message text: they ask `classifyError()` and branch on
 * `retriable`. Codes not listed fall back to the client library's own verdict
 * (kafkajs sets `retriable` on every error it raises) or, failing that, to
 * "fatal", because retrying an unknown error forever hides bugs.
 */

/** MySQL/MariaDB server error numbers (`errno`). */
export const MYSQL_ERRNO: Readonly<Record<number, { name: string; retriable: boolean }>> = {
  1040: { name: 'ER_CON_COUNT_ERROR', retriable: true },
  1045: { name: 'ER_ACCESS_DENIED_ERROR', retriable: false },
  1049: { name: 'ER_BAD_DB_ERROR', retriable: false },
  1054: { name: 'ER_BAD_FIELD_ERROR', retriable: false },
  1062: { name: 'ER_DUP_ENTRY', retriable: false }, // the applier retries its own insert race explicitly
  1142: { name: 'ER_TABLEACCESS_DENIED_ERROR', retriable: false },
  1146: { name: 'ER_NO_SUCH_TABLE', retriable: false },
  1205: { name: 'ER_LOCK_WAIT_TIMEOUT', retriable: true },
  1213: { name: 'ER_LOCK_DEADLOCK', retriable: true },
  1227: { name: 'ER_SPECIFIC_ACCESS_DENIED_ERROR', retriable: false },
  1236: { name: 'ER_MASTER_FATAL_ERROR_READING_BINLOG', retriable: false }, // binlog purged: never skip ahead
  1290: { name: 'ER_OPTION_PREVENTS_STATEMENT', retriable: false }, // e.g. read_only
  1317: { name: 'ER_QUERY_INTERRUPTED', retriable: true },
  1614: { name: 'ER_XA_RBDEADLOCK', retriable: true },
  1927: { name: 'ER_CONNECTION_KILLED', retriable: true },
  1945: { name: 'ER_MASTER_GTID_POS_CONFLICTS_WITH_BINLOG', retriable: false },
  1955: { name: 'ER_GTID_POSITION_NOT_FOUND_IN_BINLOG2', retriable: false },
  2002: { name: 'CR_CONNECTION_ERROR', retriable: true },
  2003: { name: 'CR_CONN_HOST_ERROR', retriable: true },
  2006: { name: 'CR_SERVER_GONE_ERROR', retriable: true },
  2013: { name: 'CR_SERVER_LOST', retriable: true },
  3572: { name: 'ER_LOCK_NOWAIT', retriable: true },
};

/** Node socket errors and mysql2 client-side codes (`code`), all transient. */
export const TRANSIENT_SOCKET_CODES: ReadonlySet<string> = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'EPIPE',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EAI_AGAIN',
  'PROTOCOL_CONNECTION_LOST',
  'PROTOCOL_SEQUENCE_TIMEOUT',
]);

/**
 * Node's codes for a server certificate that does not verify (`code` of the
 * TLS error, kept by kafkajs' connection error). kafkajs calls them retriable
 * like any connection failure, but a wrong CA or name does not fix itself:
 * waiting it out would look like "Kafka unavailable" forever.
 */
export const TLS_CERTIFICATE_CODES: ReadonlySet<string> = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Kafka protocol error codes whose verdict we override: kafkajs calls some of
 * these retriable, but for an idempotent producer or a misconfigured cluster
 * retrying cannot help and would stall the pipeline silently.
 */
export const KAFKA_PROTOCOL_CODE: Readonly<Record<number, { name: string; retriable: boolean }>> = {
  3: { name: 'UNKNOWN_TOPIC_OR_PARTITION', retriable: true },
  5: { name: 'LEADER_NOT_AVAILABLE', retriable: true },
  6: { name: 'NOT_LEADER_OR_FOLLOWER', retriable: true },
  7: { name: 'REQUEST_TIMED_OUT', retriable: true },
  10: { name: 'MESSAGE_TOO_LARGE', retriable: false },
  13: { name: 'NETWORK_EXCEPTION', retriable: true },
  14: { name: 'COORDINATOR_LOAD_IN_PROGRESS', retriable: true },
  15: { name: 'COORDINATOR_NOT_AVAILABLE', retriable: true },
  16: { name: 'NOT_COORDINATOR', retriable: true },
  19: { name: 'NOT_ENOUGH_REPLICAS', retriable: true },
  20: { name: 'NOT_ENOUGH_REPLICAS_AFTER_APPEND', retriable: true },
  29: { name: 'TOPIC_AUTHORIZATION_FAILED', retriable: false },
  30: { name: 'GROUP_AUTHORIZATION_FAILED', retriable: false },
  31: { name: 'CLUSTER_AUTHORIZATION_FAILED', retriable: false },
  45: { name: 'OUT_OF_ORDER_SEQUENCE_NUMBER', retriable: false },
  47: { name: 'INVALID_PRODUCER_EPOCH', retriable: false },
  58: { name: 'SASL_AUTHENTICATION_FAILED', retriable: false },
  87: { name: 'INVALID_RECORD', retriable: false },
};

function numberField(err: object, key: string): number | undefined {
  const value = (err as Record<string, unknown>)[key];
  return typeof value === 'number' ? value : undefined;
}

function stringField(err: object, key: string): string | undefined {
  const value = (err as Record<string, unknown>)[key];
  return typeof value === 'string' ? value : undefined;
}

function isKafkaJsError(err: object): boolean {
  // kafkajs errors all carry a boolean `retriable`; its classes are not
  // exported for instanceof checks through the ESM entry point.
  return typeof (err as Record<string, unknown>).retriable === 'boolean';
}

/**
 * Wraps any thrown value in a CdcError whose `retriable` flag follows the
 * tables above. A CdcError passes through unchanged. Programmer errors
 * (TypeError, RangeError, ...) are always fatal.
 */
/**
 * Error-like check without `instanceof`: errors created in another realm
 * (Node's own socket errors inside jest's VM context, for one) fail
 * `instanceof Error` but are errors all the same.
 */
function isErrorLike(err: unknown): err is Error {
  return (
    typeof err === 'object' &&
    err !== null &&
    typeof (err as { message?: unknown }).message === 'string'
  );
}

export function classifyError(err: unknown, context?: string): CdcError {
  if (err instanceof CdcError) return err;
  const prefix = context === undefined ? '' : `${context}: `;
  if (!isErrorLike(err)) {
    return new CdcError(`${prefix}${String(err)}`, { retriable: false, cause: err });
  }
  if (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError) {
    return new CdcError(`${prefix}${err.message}`, { retriable: false, code: 'BUG', cause: err });
  }
  const errno = numberField(err, 'errno');
  const code = stringField(err, 'code');
  if (errno !== undefined && MYSQL_ERRNO[errno] !== undefined) {
    const entry = MYSQL_ERRNO[errno];
    return new CdcError(`${prefix}${err.message}`, {
      retriable: entry.retriable,
      code: `MYSQL_${errno}`,
      cause: err,
    });
  }
  if (code !== undefined && TRANSIENT_SOCKET_CODES.has(code)) {
    return new CdcError(`${prefix}${err.message}`, { retriable: true, code, cause: err });
  }
  if (code !== undefined && TLS_CERTIFICATE_CODES.has(code)) {
    return new CdcError(`${prefix}${err.message}`, { retriable: false, code, cause: err });
  }
  const cause = (err as { cause?: unknown }).cause;
  if (
    isKafkaJsError(err) &&
    (err as { retriable?: unknown }).retriable === false &&
    isErrorLike(cause) &&
    cause !== err
  ) {
    // kafkajs gives up after its own, short retry budget and wraps the last
    // failure in a non-retriable error whose `cause` is that failure (nested
    // retriers wrap once more, keeping the original cause). Whether the
    // caller's longer retry loop goes on depends on what kept failing: Kafka
    // being down (connection refused) is worth waiting out (DESIGN.md §6); a
    // rejected request is not. kafkajs' own consumer decides restarts the same way.
    const inner = classifyError(cause);
    return new CdcError(`${prefix}${err.message}`, {
      retriable: inner.retriable,
      code: inner.code,
      cause: err,
    });
  }
  if (isKafkaJsError(err)) {
    const protocolCode = numberField(err, 'code');
    const override = protocolCode === undefined ? undefined : KAFKA_PROTOCOL_CODE[protocolCode];
    const retriable = override?.retriable ?? (err as unknown as { retriable: boolean }).retriable;
    return new CdcError(`${prefix}${err.message}`, {
      retriable,
      code: override === undefined ? 'KAFKA' : `KAFKA_${override.name}`,
      cause: err,
    });
  }
  return new CdcError(`${prefix}${err.message}`, { retriable: false, cause: err });
}

/** Shorthand for `classifyError(err).retriable`. */
export function isRetriable(err: unknown): boolean {
  return classifyError(err).retriable;
}
