import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';

import { CdcError } from '../../../src/core/errors.js';
import { Secret } from '../../../src/core/secret.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import {
  RedisCheckpointStore,
  type RedisCheckpointStoreOptions,
} from '../../../src/state/index.js';

jest.setTimeout(60_000);

/** How long an operation may wait for Redis in these tests, and the bound we hold it to. */
const CONNECT_TIMEOUT_MS = 1_000;
const BOUND_MS = CONNECT_TIMEOUT_MS + 2_000;

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

describe('redis checkpoint store against a real redis-server', () => {
  let sandbox: Sandbox;
  let url = '';
  const stores: RedisCheckpointStore[] = [];

  async function open(options: Partial<RedisCheckpointStoreOptions> = {}) {
    const store = await RedisCheckpointStore.open({
      url: new Secret(url),
      keyPrefix: `redis-test:${randomUUID()}`,
      connectTimeoutMs: CONNECT_TIMEOUT_MS,
      ...options,
    });
    stores.push(store);
    return store;
  }

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [], kafka: false, redis: true });
    url = sandbox.redis?.url ?? '';
  });

  afterEach(async () => {
    // A test that fails half-way must not leave Redis down for the next one.
    await sandbox.services.redis?.start();
    await Promise.all(stores.splice(0).map((store) => store.close()));
  });

  afterAll(async () => {
    await sandbox?.stop();
  });

  it('fails fast and retriably while Redis is down, then works again without being recreated', async () => {
    const store = await open();
    const before = { position: '1-101-7', savedAtMs: Date.now() };
    await store.save('capture:app', before);

    await sandbox.services.redis?.stop();
    for (const operation of [
      () => store.save('capture:app', { position: '1-101-8', savedAtMs: Date.now() }),
      () => store.load('capture:app'),
    ]) {
      const t0 = Date.now();
      const err = await rejection(operation());
      expect(Date.now() - t0).toBeLessThan(BOUND_MS);
      expect(err).toBeInstanceOf(CdcError);
      expect(err).toMatchObject({ retriable: true, code: 'STATE_UNAVAILABLE' });
      expect((err as Error).message).toContain(url);
    }

    await sandbox.services.redis?.start();
    // The AOF kept the last successful save across the restart.
    expect(await store.load('capture:app')).toEqual(before);
    const after = { position: '1-101-9', savedAtMs: Date.now() };
    await store.save('capture:app', after);
    expect(await store.load('capture:app')).toEqual(after);
  });

  it('refuses to open within a bounded time when Redis is down', async () => {
    await sandbox.services.redis?.stop();
    const t0 = Date.now();
    const err = await rejection(open());
    expect(Date.now() - t0).toBeLessThan(BOUND_MS);
    expect(err).toMatchObject({ retriable: true, code: 'STATE_UNAVAILABLE' });
  });

  it('keeps an acknowledged save when the Redis process crashes', async () => {
    const store = await open();
    const saved = { position: '2-102-99', savedAtMs: Date.now(), meta: { k: 'v' } };
    await store.save('capture:app', saved, 3);
    await sandbox.services.redis?.kill();
    await sandbox.services.redis?.start();
    expect(await store.load('capture:app')).toEqual(saved);
    // The fencing token survived too.
    const err = await rejection(store.save('capture:app', { position: '0', savedAtMs: 0 }, 2));
    expect(err).toMatchObject({ code: 'FENCED' });
  });

  describe('with data it did not write', () => {
    let raw: Redis;

    beforeAll(() => {
      raw = new Redis(url);
    });

    afterAll(() => {
      raw.disconnect();
    });

    it('reports a corrupt checkpoint naming the key instead of treating it as missing', async () => {
      const prefix = `redis-test:${randomUUID()}`;
      const store = await open({ keyPrefix: prefix });
      await raw.hset(`${prefix}:capture:app`, 'checkpoint', '{"position":');
      const err = await rejection(store.load('capture:app'));
      expect(err).toMatchObject({ retriable: false, code: 'STATE_CORRUPT' });
      expect((err as Error).message).toContain(`${prefix}:capture:app`);
    });

    it('reports a key of another type as a non-retriable Redis error', async () => {
      const prefix = `redis-test:${randomUUID()}`;
      const store = await open({ keyPrefix: prefix });
      await raw.set(`${prefix}:k`, 'not a hash');
      for (const operation of [
        () => store.load('k'),
        () => store.save('k', { position: '1', savedAtMs: 1 }),
      ]) {
        expect(await rejection(operation())).toMatchObject({
          retriable: false,
          code: 'STATE_REDIS_WRONGTYPE',
        });
      }
    });
  });

  it('fails fast and non-retriably on a wrong password, without printing it', async () => {
    const admin = new Redis(url);
    const password = `pw-${randomUUID()}`;
    await admin.config('SET', 'requirepass', password);
    try {
      const wrong = `wrong-${randomUUID()}`;
      const authed = url.replace('redis://', `redis://cdc:${wrong}@`);
      const t0 = Date.now();
      const err = await rejection(open({ url: new Secret(authed) }));
      expect(Date.now() - t0).toBeLessThan(CONNECT_TIMEOUT_MS);
      expect(err).toMatchObject({ retriable: false, code: 'STATE_REDIS_WRONGPASS' });
      expect((err as Error).message).toContain(url.replace('redis://', 'redis://cdc:***@'));
      expect((err as Error).message).not.toContain(wrong);

      const store = await open({
        url: new Secret(url.replace('redis://', `redis://:${password}@`)),
      });
      expect(store.description).not.toContain(password);
      await store.save('k', { position: '1', savedAtMs: 1 });
      expect((await store.load('k'))?.position).toBe('1');
    } finally {
      // The connection authenticated before the password was set stays usable.
      await admin.config('SET', 'requirepass', '');
      admin.disconnect();
    }
  });

  it('reports a save no replica acknowledged as retriable, keeping it on the primary', async () => {
    const store = await open({ waitForReplicas: { replicas: 1, timeoutMs: 200 } });
    const saved = { position: '1-101-1', savedAtMs: Date.now() };
    const err = await rejection(store.save('k', saved));
    expect(err).toMatchObject({ retriable: true, code: 'STATE_REPLICATION_TIMEOUT' });
    expect(await store.load('k')).toEqual(saved);
  });
});
