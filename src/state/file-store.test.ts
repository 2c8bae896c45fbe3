import { spawnSync } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { CdcError } from '../core/errors.js';
import { FileCheckpointStore, checkpointFileName } from './file-store.js';
import type { Checkpoint } from './store.js';

async function rejection(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (err) {
    return err;
  }
  throw new Error('expected the promise to reject');
}

/** A pid that belonged to a process which has exited, like a crashed daemon's. */
function deadPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', '']);
  if (pid === undefined) throw new Error('could not spawn a child process');
  return pid;
}

describe('FileCheckpointStore', () => {
  let dir = '';
  const stores: FileCheckpointStore[] = [];
  const saved: Checkpoint = { position: '1-101-42', savedAtMs: 1_700_000_000_000 };

  async function open(keyPrefix = 'cdc:us-east'): Promise<FileCheckpointStore> {
    const store = await FileCheckpointStore.open({ dir, keyPrefix });
    stores.push(store);
    return store;
  }

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cdc-file-store-'));
  });

  afterEach(async () => {
    await Promise.all(stores.splice(0).map((store) => store.close()));
    await rm(dir, { recursive: true, force: true });
  });

  describe('a corrupt checkpoint file', () => {
    it.each([
      [
        'truncated JSON',
        '{"format":1,"key":"cdc:us-east:app","checkpoint":{"posi',
        'not valid JSON',
      ],
      ['an empty file', '', 'empty file'],
      [
        'a checkpoint without a position',
        '{"format":1,"key":"cdc:us-east:app","checkpoint":{"savedAtMs":1}}',
        'position',
      ],
      ['a file of an unknown format', '{"format":2}', 'unknown format'],
      [
        "another key's file",
        '{"format":1,"key":"cdc:eu-west:app","checkpoint":{"position":"1","savedAtMs":1}}',
        'cdc:eu-west:app',
      ],
    ])(
      'fails clearly on %s, naming the file, for load and save',
      async (_label, contents, problem) => {
        const store = await open();
        const file = store.pathFor('app');
        await writeFile(file, contents);

        for (const operation of [() => store.load('app'), () => store.save('app', saved)]) {
          const err = await rejection(operation());
          expect(err).toBeInstanceOf(CdcError);
          expect(err).toMatchObject({ code: 'STATE_CORRUPT', retriable: false });
          expect((err as Error).message).toContain(file);
          expect((err as Error).message).toContain(problem);
        }
        // The evidence is left for the operator, not overwritten.
        expect(await readFile(file, 'utf8')).toBe(contents);
      },
    );
  });

  describe('after a crash in the middle of a save', () => {
    it('ignores the leftover temp file and loads the previous value', async () => {
      const first = await open();
      await first.save('app', saved);
      const file = first.pathFor('app');
      await first.close();
      // What a crash between open(temp) and rename() leaves behind: a partial temp file.
      await writeFile(`${file}.tmp-${process.pid}-7`, '{"format":1,"key":"cdc:us-e');

      const second = await open();
      expect(await second.load('app')).toEqual(saved);
      const next: Checkpoint = { position: '1-101-43', savedAtMs: saved.savedAtMs + 1 };
      await second.save('app', next);
      expect(await second.load('app')).toEqual(next);
    });

    it('removes temp files of writers that are gone when it opens, and keeps live ones', async () => {
      const name = checkpointFileName('cdc:us-east:app');
      const orphan = `${name}.tmp-${deadPid()}-1`;
      const live = `${name}.tmp-${process.pid}-1`;
      await writeFile(join(dir, orphan), '{');
      await writeFile(join(dir, live), '{');
      await open();
      const names = await readdir(dir);
      expect(names).not.toContain(orphan);
      expect(names).toContain(live);
    });
  });

  it('stores a self-describing JSON file with the full key and fencing token', async () => {
    const store = await open();
    await store.save('app', { ...saved, meta: { binlogFile: 'mysql-bin.000001' } }, 4);
    const contents: unknown = JSON.parse(await readFile(store.pathFor('app'), 'utf8'));
    expect(contents).toEqual({
      format: 1,
      key: 'cdc:us-east:app',
      checkpoint: { ...saved, meta: { binlogFile: 'mysql-bin.000001' } },
      fence: 4,
    });
  });

  it('keeps every key inside its directory, however it is spelled', async () => {
    expect(checkpointFileName('cdc:us-east:app')).toBe('cdc%3Aus-east%3Aapp.json');
    expect(checkpointFileName('../../etc/passwd')).toBe('..%2F..%2Fetc%2Fpasswd.json');
    expect(checkpointFileName('a%2Fb')).toBe('a%252Fb.json');
    expect(checkpointFileName('é')).toBe('%C3%A9.json');
    const store = await open('');
    await store.save('../escape', saved);
    expect(await readdir(join(dir, '..'))).not.toContain('escape.json');
    expect(await readdir(dir)).toEqual(['..%2Fescape.json']);
  });

  it('creates a missing state directory', async () => {
    const nested = join(dir, 'state', 'us-east');
    const store = await FileCheckpointStore.open({ dir: nested });
    stores.push(store);
    await store.save('app', saved);
    expect(await readdir(nested)).toEqual(['app.json']);
  });

  it('refuses keys and checkpoints it could not store faithfully', async () => {
    const store = await open();
    const bad: Array<() => Promise<unknown>> = [
      () => store.save('', saved),
      () => store.save('x'.repeat(300), saved),
      () => store.save('\ud800', saved),
      () => store.save('app', { position: '1', savedAtMs: Number.NaN }),
      () => store.save('app', { position: 1 } as unknown as Checkpoint),
      () => store.save('app', { ...saved, meta: { n: 1 } } as unknown as Checkpoint),
    ];
    for (const operation of bad) {
      expect(await rejection(operation())).toMatchObject({
        code: 'STATE_INVALID_ARGUMENT',
        retriable: false,
      });
    }
    expect(await readdir(dir)).toEqual([]);
  });
});
