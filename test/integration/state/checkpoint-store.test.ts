import { jest } from '@jest/globals';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Secret } from '../../../src/core/secret.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { createCheckpointStore } from '../../../src/state/index.js';
import { describeCheckpointStoreConformance } from './conformance.js';

// Starting redis-server takes well under a second; the margin is for slow CI machines.
jest.setTimeout(60_000);

describe('file checkpoint store', () => {
  let dir = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cdc-state-'));
  });

  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  describeCheckpointStoreConformance('file', (keyPrefix) =>
    createCheckpointStore({ kind: 'file', dir, keyPrefix }),
  );
});

describe('redis checkpoint store', () => {
  let sandbox: Sandbox | undefined;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: [], kafka: false, redis: true });
  });

  afterAll(async () => {
    await sandbox?.stop();
  });

  describeCheckpointStoreConformance('redis', (keyPrefix) => {
    const url = sandbox?.redis?.url;
    if (url === undefined) throw new Error('the sandbox did not start Redis');
    return createCheckpointStore({ kind: 'redis', url: new Secret(url), keyPrefix });
  });
});
