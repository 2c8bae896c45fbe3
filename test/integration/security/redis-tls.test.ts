/**
 * TLS to Redis for real: a redis-server that only listens with TLS, serving a
 * certificate from a throwaway CA. The checkpoint store and the capture lease,
 * built from a `rediss://` url and `redis.tls.caFile` as `run` compiles them,
 * must work through it, and a client trusting another CA must be refused.
 */
import { jest } from '@jest/globals';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import { compileRegion, type RuntimeOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { freePort } from '../../../src/sandbox/ports.js';
import { requirePrograms } from '../../../src/sandbox/prerequisites.js';
import { createCheckpointStore } from '../../../src/state/index.js';
import { RedisLease, leaseTiming } from '../../../src/state/lease.js';
import { makeCa, makeServerCert } from './certs.js';

jest.setTimeout(60_000);

describe('TLS to Redis', () => {
  let dir: string;
  let port: number;
  let server: ChildProcess | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdc-redis-tls-'));
    makeCa(dir, 'good');
    makeCa(dir, 'other');
    makeServerCert(dir, 'good');
    port = await freePort();
    const { redisServer } = requirePrograms(['redisServer']);
    const log = join(dir, 'redis.log');
    server = spawn(
      redisServer,
      [
        '--port', '0', // no plaintext listener at all
        '--tls-port', String(port),
        '--bind', '127.0.0.1',
        '--tls-cert-file', join(dir, 'server.pem'),
        '--tls-key-file', join(dir, 'server.key'),
        '--tls-ca-cert-file', join(dir, 'good-ca.pem'),
        '--tls-auth-clients', 'no',
        '--save', '',
        '--appendonly', 'no',
        '--dir', dir,
        '--logfile', log,
      ], // prettier-ignore
      { stdio: 'ignore' },
    );
    for (let i = 0; ; i += 1) {
      let text = '';
      try {
        text = readFileSync(log, 'utf8');
      } catch {
        // not created yet
      }
      if (text.includes('Ready to accept connections')) break;
      if (i > 200 || server.exitCode !== null)
        throw new Error(`redis-server did not start:\n${text}`);
      await sleep(50);
    }
  });

  afterAll(async () => {
    if (server !== undefined && server.exitCode === null) {
      const exited = new Promise((resolve) => server?.once('exit', resolve));
      server.kill('SIGKILL');
      await exited;
    }
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  function options(caFile: string): RuntimeOptions {
    const yaml = `
regions:
  r1:
    mysql: { host: 127.0.0.1, user: root, password: "" }
kafka: { brokers: ["127.0.0.1:9"] }
redis: { url: "rediss://127.0.0.1:${port}", keyPrefix: tls-test, tls: { caFile: ${caFile} } }
pipelines:
  - name: app
    tables: ["app.*"]
`;
    return compileRegion(parseConfig(yaml, { env: {} }), 'r1', { baseDir: dir });
  }

  it('checkpoints and the lease work over TLS with the configured CA', async () => {
    const compiled = options('good-ca.pem');
    const store = await createCheckpointStore(compiled.checkpointStore);
    try {
      await store.save('capture', { position: '1-101-5', savedAtMs: Date.now() }, 1);
      expect((await store.load('capture'))?.position).toBe('1-101-5');
    } finally {
      await store.close();
    }
    if (compiled.checkpointStore.kind !== 'redis') throw new Error('expected a redis store');
    const lease = await RedisLease.open({
      url: compiled.checkpointStore.url,
      keyPrefix: compiled.checkpointStore.keyPrefix,
      tls: compiled.checkpointStore.tls,
      name: 'capture',
      timing: leaseTiming(3000),
    });
    try {
      expect(await lease.tryAcquire()).toMatchObject({ acquired: true });
    } finally {
      await lease.close();
    }
  });

  it('refuses a server whose certificate another CA signed, saying why', async () => {
    const compiled = options('other-ca.pem');
    if (compiled.checkpointStore.kind !== 'redis') throw new Error('expected a redis store');
    const err = await createCheckpointStore({
      ...compiled.checkpointStore,
      connectTimeoutMs: 1_000,
    }).then(
      async (store) => {
        await store.close();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toMatchObject({ code: 'STATE_UNAVAILABLE' });
    expect((err as Error).message).toMatch(/certificate/i);
    console.log(`wrong CA: ${(err as Error).message}`);
  });
});
