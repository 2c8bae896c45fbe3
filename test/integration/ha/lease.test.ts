/**
 * The capture lease against a real redis-server: one holder at a time, a
 * standby gets it only once the holder's TTL lapsed (with a larger token),
 * renewals and releases act only on one's own lease, and the checkpoint
 * store refuses the former holder's token once the new one saved.
 */
import { jest } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';

import { Secret } from '../../../src/core/secret.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { RedisCheckpointStore } from '../../../src/state/index.js';
import { RedisLease, leaseTiming, type RedisLeaseOptions } from '../../../src/state/lease.js';

jest.setTimeout(60_000);

const TTL_MS = 800;

describe('redis lease', () => {
  let sandbox: Sandbox;
  const leases: RedisLease[] = [];
  const stores: RedisCheckpointStore[] = [];

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [], kafka: false, redis: true });
  });

  afterAll(async () => {
    await Promise.all([...leases, ...stores].map((l) => l.close()));
    await sandbox?.stop();
  });

  async function open(
    keyPrefix: string,
    owner: string,
    extra: Partial<RedisLeaseOptions> = {},
  ): Promise<RedisLease> {
    const lease = await RedisLease.open({
      url: new Secret(sandbox.redis?.url ?? ''),
      keyPrefix,
      name: 'capture',
      timing: leaseTiming(TTL_MS, 200),
      owner,
      ...extra,
    });
    leases.push(lease);
    return lease;
  }

  it('one holder at a time; a standby takes over with a larger token only after the TTL lapses', async () => {
    const prefix = `lease-test:${randomUUID()}`;
    const a = await open(prefix, 'daemon-a');
    const b = await open(prefix, 'daemon-b');

    const first = await a.tryAcquire();
    expect(first).toEqual({ acquired: true, token: 1 });
    const refused = await b.tryAcquire();
    expect(refused).toMatchObject({ acquired: false, holder: 'daemon-a 1' });
    if (refused.acquired) throw new Error('unreachable');
    expect(refused.remainingMs).toBeGreaterThan(0);
    expect(refused.remainingMs).toBeLessThanOrEqual(TTL_MS);

    // Renewals keep it alive past several TTLs; b's renewal with a's token does not count.
    for (let i = 0; i < 5; i += 1) {
      await sleep(TTL_MS / 2);
      expect(await a.renew(1)).toEqual({ renewed: true });
      expect(await b.renew(1)).toEqual({ renewed: false, holder: 'daemon-a 1' });
      expect(await b.tryAcquire()).toMatchObject({ acquired: false });
    }

    // a stops renewing (paused, or dead): b gets the lease once it lapsed.
    await sleep(TTL_MS + 100);
    const second = await b.tryAcquire();
    expect(second).toEqual({ acquired: true, token: 2 });
    expect(await a.renew(1)).toEqual({ renewed: false, holder: 'daemon-b 2' });
    // A release by the former holder must not free the new holder's lease.
    expect(await a.release(1)).toBe(false);
    expect(await a.tryAcquire()).toMatchObject({ acquired: false, holder: 'daemon-b 2' });

    // A graceful release hands over at once, with a new token.
    expect(await b.release(2)).toBe(true);
    expect(await a.tryAcquire()).toEqual({ acquired: true, token: 3 });
  });

  it("the checkpoint store refuses the former holder's token once the new holder saved", async () => {
    const prefix = `lease-test:${randomUUID()}`;
    const a = await open(prefix, 'daemon-a');
    const b = await open(prefix, 'daemon-b');
    const store = await RedisCheckpointStore.open({
      url: new Secret(sandbox.redis?.url ?? ''),
      keyPrefix: prefix,
    });
    stores.push(store);

    const held = await a.tryAcquire();
    if (!held.acquired) throw new Error('a should get the free lease');
    await store.save('capture', { position: '1-101-10', savedAtMs: Date.now() }, held.token);
    await sleep(TTL_MS + 100);
    const taken = await b.tryAcquire();
    if (!taken.acquired) throw new Error('b should get the lapsed lease');
    expect(taken.token).toBeGreaterThan(held.token);
    await store.save('capture', { position: '1-101-20', savedAtMs: Date.now() }, taken.token);

    // a wakes up and tries to save what it had: refused, the position stays b's.
    await expect(
      store.save('capture', { position: '1-101-15', savedAtMs: Date.now() }, held.token),
    ).rejects.toMatchObject({ code: 'FENCED', retriable: false });
    expect((await store.load('capture'))?.position).toBe('1-101-20');
  });

  it('tokens stay above the fence a checkpoint recorded, even if the counter is lost', async () => {
    const prefix = `lease-test:${randomUUID()}`;
    const a = await open(prefix, 'daemon-a', { fencedCheckpointKey: 'capture' });
    const store = await RedisCheckpointStore.open({
      url: new Secret(sandbox.redis?.url ?? ''),
      keyPrefix: prefix,
    });
    stores.push(store);
    await store.save('capture', { position: '1-101-1', savedAtMs: Date.now() }, 41);
    const redis = new Redis(sandbox.redis?.url ?? '');
    try {
      expect(await a.tryAcquire()).toEqual({ acquired: true, token: 42 });
      await store.save('capture', { position: '1-101-2', savedAtMs: Date.now() }, 42);
      expect(await a.release(42)).toBe(true);
      await redis.del(`${a.key}:fence`); // an operator's clean-up gone wrong
      expect(await a.tryAcquire()).toEqual({ acquired: true, token: 43 });
    } finally {
      redis.disconnect();
    }
    await store.save('capture', { position: '1-101-3', savedAtMs: Date.now() }, 43);
  });

  it('fails retriably, not forever, while Redis is down', async () => {
    const prefix = `lease-test:${randomUUID()}`;
    const a = await open(prefix, 'daemon-a');
    await sandbox.services.redis?.stop();
    try {
      await expect(a.tryAcquire()).rejects.toMatchObject({
        code: 'LEASE_UNAVAILABLE',
        retriable: true,
      });
    } finally {
      await sandbox.services.redis?.start();
    }
    // The client reconnects by itself.
    let result;
    for (let i = 0; i < 50; i += 1) {
      result = await a.tryAcquire().catch(() => undefined);
      if (result !== undefined) break;
      await sleep(100);
    }
    expect(result).toMatchObject({ acquired: true });
  });
});
