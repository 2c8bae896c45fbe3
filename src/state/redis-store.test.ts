import { freePort } from '../sandbox/ports.js';
import { CdcError } from '../core/errors.js';
import { Secret } from '../core/secret.js';
import { RedisCheckpointStore } from './redis-store.js';

// No Redis runs here: these tests cover what happens when none answers.

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

describe('RedisCheckpointStore without a reachable server', () => {
  it('fails to open within the connect timeout, retriably, naming the URL without its password', async () => {
    const port = await freePort(); // nothing listens there once freePort has returned
    const password = 'correct-horse-battery-staple';
    const t0 = Date.now();
    const err = await rejection(
      RedisCheckpointStore.open({
        url: new Secret(`redis://cdc:${password}@127.0.0.1:${port}/0`),
        keyPrefix: 'cdc:us-east',
        connectTimeoutMs: 500,
      }),
    );
    expect(Date.now() - t0).toBeLessThan(3_000);
    expect(err).toBeInstanceOf(CdcError);
    expect(err).toMatchObject({ retriable: true, code: 'STATE_UNAVAILABLE' });
    const message = (err as Error).message;
    expect(message).toContain(`redis://cdc:***@127.0.0.1:${port}/0`);
    expect(message).not.toContain(password);
    expect(JSON.stringify(err)).not.toContain(password);
  });

  it('rejects options that could make it hang or collide', async () => {
    const url = new Secret('redis://127.0.0.1:1');
    await expect(RedisCheckpointStore.open({ url, keyPrefix: '' })).rejects.toMatchObject({
      code: 'STATE_INVALID_ARGUMENT',
    });
    await expect(
      RedisCheckpointStore.open({ url, keyPrefix: 'p', connectTimeoutMs: 0 }),
    ).rejects.toMatchObject({ code: 'STATE_INVALID_ARGUMENT' });
    await expect(
      RedisCheckpointStore.open({
        url,
        keyPrefix: 'p',
        commandTimeoutMs: 1_000,
        waitForReplicas: { replicas: 1, timeoutMs: 1_000 },
      }),
    ).rejects.toMatchObject({ code: 'STATE_INVALID_ARGUMENT' });
  });
});
