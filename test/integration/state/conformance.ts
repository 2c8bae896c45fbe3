import { randomUUID } from 'node:crypto';

import { CdcError } from '../../../src/core/errors.js';
import type { Checkpoint, CheckpointStore } from '../../../src/state/index.js';

/**
 * Opens a new store instance over the backing storage shared by the whole
 * suite (one directory, one Redis). Each call is a fresh instance, as after a
 * daemon restart.
 */
export type CheckpointStoreFactory = (keyPrefix: string) => Promise<CheckpointStore>;

function checkpoint(position: string, meta?: Record<string, string>): Checkpoint {
  return meta === undefined
    ? { position, savedAtMs: Date.now() }
    : { position, savedAtMs: Date.now(), meta };
}

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

/**
 * The behaviour every `CheckpointStore` adapter must have. Each test uses a
 * random key prefix, so tests never see each other's data even though they
 * share the backing storage.
 */
export function describeCheckpointStoreConformance(
  name: string,
  factory: CheckpointStoreFactory,
): void {
  describe(`${name}: CheckpointStore conformance`, () => {
    const opened: CheckpointStore[] = [];
    let prefix = '';

    async function open(keyPrefix = prefix): Promise<CheckpointStore> {
      const store = await factory(keyPrefix);
      opened.push(store);
      return store;
    }

    beforeEach(() => {
      prefix = `conformance:${randomUUID()}`;
    });

    afterEach(async () => {
      await Promise.all(opened.splice(0).map((store) => store.close()));
    });

    it('loads undefined for a key never saved', async () => {
      const store = await open();
      expect(await store.load('capture:app')).toBeUndefined();
    });

    it('loads exactly what was saved, meta included', async () => {
      const store = await open();
      const saved = checkpoint('1-101-42,2-102-7', { binlogFile: 'mysql-bin.000003' });
      await store.save('capture:app', saved);
      expect(await store.load('capture:app')).toEqual(saved);

      const mysqlGtidSet = checkpoint(
        '3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5,4f22ab58-71ca-11e1-9e33-c80aa9429562:1-9',
      );
      await store.save('capture:mysql', mysqlGtidSet);
      expect(await store.load('capture:mysql')).toEqual(mysqlGtidSet);
    });

    it('keeps the latest of several saves', async () => {
      const store = await open();
      await store.save('k', checkpoint('0-1-1'));
      await store.save('k', checkpoint('0-1-2'));
      const latest = checkpoint('0-1-3');
      await store.save('k', latest);
      expect(await store.load('k')).toEqual(latest);
    });

    it('keeps keys apart, including keys that need escaping', async () => {
      const store = await open();
      const keys = ['a', 'b', 'a/b', '../a', 'a b', 'ä', 'a%2Fb', '.', 'A'];
      for (const [i, key] of keys.entries()) await store.save(key, checkpoint(`0-1-${i}`));
      for (const [i, key] of keys.entries()) {
        expect((await store.load(key))?.position).toBe(`0-1-${i}`);
      }
    });

    it('keeps prefixes apart', async () => {
      const us = await open(`${prefix}:us-east`);
      const eu = await open(`${prefix}:eu-west`);
      await us.save('capture:app', checkpoint('1-101-1'));
      expect(await eu.load('capture:app')).toBeUndefined();
      await eu.save('capture:app', checkpoint('2-102-1'));
      expect((await us.load('capture:app'))?.position).toBe('1-101-1');
      expect((await eu.load('capture:app'))?.position).toBe('2-102-1');
    });

    it('treats a trailing ":" on the prefix as the same namespace', async () => {
      const plain = await open(`${prefix}:us-east`);
      const withColon = await open(`${prefix}:us-east:`);
      await plain.save('k', checkpoint('1-101-9'));
      expect((await withColon.load('k'))?.position).toBe('1-101-9');
    });

    it('keeps values across closing and reopening the store', async () => {
      const first = await open();
      const saved = checkpoint('1-101-42', { note: 'before restart' });
      await first.save('capture:app', saved);
      await first.close();
      const second = await open();
      expect(await second.load('capture:app')).toEqual(saved);
    });

    it('rejects operations after close and allows closing twice', async () => {
      const store = await open();
      await store.close();
      await store.close();
      const err = await rejection(store.load('k'));
      expect(err).toBeInstanceOf(CdcError);
      expect((err as CdcError).code).toBe('STATE_CLOSED');
    });

    describe('fencing', () => {
      it('accepts a higher token and an equal one', async () => {
        const store = await open();
        await store.save('k', checkpoint('0-1-1'), 1);
        await store.save('k', checkpoint('0-1-2'), 5);
        await store.save('k', checkpoint('0-1-3'), 5);
        expect((await store.load('k'))?.position).toBe('0-1-3');
      });

      it('rejects a lower token with a non-retriable FENCED error and keeps the value', async () => {
        const store = await open();
        await store.save('k', checkpoint('0-1-10'), 7);
        const err = await rejection(store.save('k', checkpoint('0-1-2'), 6));
        expect(err).toBeInstanceOf(CdcError);
        expect(err).toMatchObject({ code: 'FENCED', retriable: false });
        expect((await store.load('k'))?.position).toBe('0-1-10');
      });

      it('rejects an unfenced save once a key is fenced, but not before', async () => {
        const store = await open();
        await store.save('k', checkpoint('0-1-1'));
        await store.save('k', checkpoint('0-1-2'), 3);
        const err = await rejection(store.save('k', checkpoint('0-1-0')));
        expect(err).toMatchObject({ code: 'FENCED', retriable: false });
        expect((await store.load('k'))?.position).toBe('0-1-2');
      });

      it('remembers the highest token across a reopen (a zombie after a restart)', async () => {
        const leader = await open();
        await leader.save('k', checkpoint('0-1-50'), 9);
        await leader.close();
        const zombie = await open();
        const err = await rejection(zombie.save('k', checkpoint('0-1-40'), 8));
        expect(err).toMatchObject({ code: 'FENCED' });
        expect((await zombie.load('k'))?.position).toBe('0-1-50');
      });

      it('fences per key', async () => {
        const store = await open();
        await store.save('a', checkpoint('0-1-1'), 10);
        await store.save('b', checkpoint('0-1-1'), 1);
        expect((await store.load('b'))?.position).toBe('0-1-1');
      });

      it('rejects tokens that are not non-negative safe integers', async () => {
        const store = await open();
        for (const bad of [-1, 1.5, Number.NaN, 2 ** 53]) {
          const err = await rejection(store.save('k', checkpoint('0-1-1'), bad));
          expect(err).toMatchObject({ code: 'STATE_INVALID_ARGUMENT', retriable: false });
        }
        expect(await store.load('k')).toBeUndefined();
      });
    });

    it('leaves one whole saved value after 50 concurrent saves', async () => {
      const store = await open();
      const saved = Array.from({ length: 50 }, (_, i) =>
        checkpoint(`1-101-${i},2-102-${'9'.repeat(i)}`, {
          writer: String(i),
          pad: 'x'.repeat(i * 40),
        }),
      );
      await Promise.all(saved.map((value) => store.save('k', value)));
      const loaded = await store.load('k');
      expect(saved).toContainEqual(loaded);
      // And a fresh instance reads the same whole value from storage.
      const reopened = await open();
      expect(await reopened.load('k')).toEqual(loaded);
    });

    it('ends with the highest token after concurrent fenced saves, in any order', async () => {
      const store = await open();
      const tokens = Array.from({ length: 50 }, (_, i) => i);
      const results = await Promise.allSettled(
        tokens.map((token) => store.save('k', checkpoint(`0-1-${token}`), token)),
      );
      // Nothing can fence out the highest token, and once it is in, every lower one is refused.
      expect(results[49]?.status).toBe('fulfilled');
      for (const result of results) {
        if (result.status === 'rejected') expect(result.reason).toMatchObject({ code: 'FENCED' });
      }
      expect((await store.load('k'))?.position).toBe('0-1-49');
    });
  });
}
