import { CdcError } from './errors.js';
import { retryRetriable } from './retry.js';

const fast = { what: 'testing', initialDelayMs: 1, maxDelayMs: 4 };

describe('retryRetriable', () => {
  it('retries retriable failures with growing delays until the operation succeeds', async () => {
    const delays: number[] = [];
    let calls = 0;
    const result = await retryRetriable(
      () => {
        calls += 1;
        if (calls < 5) return Promise.reject(new CdcError('down', { retriable: true }));
        return Promise.resolve('ok');
      },
      { ...fast, onRetry: (_error, delay) => delays.push(delay) },
    );
    expect(result).toBe('ok');
    expect(delays).toEqual([1, 2, 4, 4]);
  });

  it('throws a non-retriable failure at once', async () => {
    let calls = 0;
    const failure = new CdcError('bad', { retriable: false });
    await expect(
      retryRetriable(
        () => {
          calls += 1;
          return Promise.reject(failure);
        },
        { ...fast, onRetry: () => undefined },
      ),
    ).rejects.toBe(failure);
    expect(calls).toBe(1);
  });

  it('stops retrying when keepGoing turns false, with the last failure', async () => {
    let calls = 0;
    await expect(
      retryRetriable(
        () => {
          calls += 1;
          return Promise.reject(new CdcError(`down ${calls}`, { retriable: true }));
        },
        { ...fast, keepGoing: () => calls < 3, onRetry: () => undefined },
      ),
    ).rejects.toThrow('down 3');
    expect(calls).toBe(3);
  });
});
