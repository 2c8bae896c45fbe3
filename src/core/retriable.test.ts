import { CdcError } from './errors.js';
import { classifyError, isRetriable } from './retriable.js';

function mysqlError(errno: number, code: string): Error {
  return Object.assign(new Error(`mysql error ${errno}`), { errno, code });
}

describe('classifyError', () => {
  it.each([
    [1213, 'ER_LOCK_DEADLOCK', true],
    [1205, 'ER_LOCK_WAIT_TIMEOUT', true],
    [2013, 'CR_SERVER_LOST', true],
    [1045, 'ER_ACCESS_DENIED_ERROR', false],
    [1236, 'ER_MASTER_FATAL_ERROR_READING_BINLOG', false],
    [1146, 'ER_NO_SUCH_TABLE', false],
  ])('maps MySQL errno %d (%s) to retriable=%s', (errno, code, retriable) => {
    const classified = classifyError(mysqlError(errno, code));
    expect(classified.retriable).toBe(retriable);
    expect(classified.code).toBe(`MYSQL_${errno}`);
    expect(classified.cause).toBeInstanceOf(Error);
  });

  it('treats socket failures as retriable', () => {
    const err = Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' });
    expect(isRetriable(err)).toBe(true);
  });

  it('overrides kafkajs where retrying cannot help', () => {
    const tooLarge = Object.assign(new Error('too large'), { retriable: true, code: 10 });
    expect(classifyError(tooLarge).retriable).toBe(false);
    expect(classifyError(tooLarge).code).toBe('KAFKA_MESSAGE_TOO_LARGE');
    const leader = Object.assign(new Error('leader'), { retriable: true, code: 5 });
    expect(classifyError(leader).retriable).toBe(true);
  });

  it("falls back to kafkajs's own verdict for codes not in the table", () => {
    const connection = Object.assign(new Error('Connection timeout'), { retriable: true });
    expect(classifyError(connection).retriable).toBe(true);
    const fatal = Object.assign(new Error('bad'), { retriable: false });
    expect(classifyError(fatal).retriable).toBe(false);
  });

  it("judges kafkajs's gave-up wrapper by what kept failing", () => {
    // The shape kafkajs' producer throws when the broker stays unreachable.
    const refused = Object.assign(new Error('Connection error: connect ECONNREFUSED'), {
      retriable: true,
      code: 'ECONNREFUSED',
    });
    const gaveUp = (cause: Error): Error =>
      Object.assign(new Error(cause.message), { retriable: false, cause });
    expect(classifyError(gaveUp(refused)).retriable).toBe(true);
    const tooLarge = Object.assign(new Error('too large'), { retriable: false, code: 10 });
    expect(classifyError(gaveUp(tooLarge)).retriable).toBe(false);
    expect(classifyError(gaveUp(tooLarge)).code).toBe('KAFKA_MESSAGE_TOO_LARGE');
  });

  it('makes a server certificate that does not verify fatal, even inside kafkajs retry wrappers', () => {
    // kafkajs marks its connection errors retriable and keeps Node's TLS code.
    const badCa = Object.assign(
      new Error('Connection error: unable to verify the first certificate'),
      {
        retriable: true,
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      },
    );
    const gaveUp = Object.assign(new Error(badCa.message), { retriable: false, cause: badCa });
    expect(classifyError(gaveUp)).toMatchObject({
      retriable: false,
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
  });

  it('makes programmer errors and unknown errors fatal', () => {
    expect(classifyError(new TypeError('x is undefined')).retriable).toBe(false);
    expect(classifyError(new Error('who knows')).retriable).toBe(false);
    expect(classifyError('a string').retriable).toBe(false);
  });

  it('passes a CdcError through untouched', () => {
    const original = new CdcError('already classified', { retriable: true, code: 'X' });
    expect(classifyError(original)).toBe(original);
  });

  it('prefixes the context', () => {
    expect(classifyError(mysqlError(1213, 'ER_LOCK_DEADLOCK'), 'apply us-east').message).toBe(
      'apply us-east: mysql error 1213',
    );
  });
});
