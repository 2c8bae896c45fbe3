import { jest } from '@jest/globals';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type mysql from 'mysql2/promise';
import type { ChangeEvent } from '../../../src/bus/envelope.js';
import { topicName } from '../../../src/bus/envelope.js';
import { createKafka } from '../../../src/bus/kafka.js';
import { runCli } from '../../../src/cli/program.js';
import type { RuntimeOptions } from '../../../src/config/compile.js';
import type { Daemon } from '../../../src/daemon/daemon.js';
import { DaemonMetrics } from '../../../src/monitor/metrics.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { describeTable } from '../../../src/mysql/introspect.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { decodeSnapshotState, snapshotCheckpointKey } from '../../../src/snapshot/checkpoint.js';
import { LogProgress } from '../../../src/snapshot/progress.js';
import { readRange, tableShape } from '../../../src/snapshot/rows.js';
import { runSnapshot } from '../../../src/snapshot/snapshot.js';
import { createCheckpointStore } from '../../../src/state/index.js';
import { CLI, writeConfigFile } from '../../support/daemon-process.js';
import { readTopicsToEnd } from '../../support/kafka.js';
import { testLogger } from '../../support/logger.js';
import { prepareRegion } from '../../support/mariadb.js';
import { seededRandom, testSeed } from '../../support/random.js';
import {
  connect,
  content,
  deployment,
  loadCheckpointText,
  seedRows,
  startDaemon,
  waitForSameContent,
} from './harness.js';
import { Writer } from './writer.js';

jest.setTimeout(600_000);

const COLUMNS = ['id', 'v', 'note'];
const tableDdl = (schema: string): string =>
  `CREATE DATABASE ${schema}; CREATE TABLE ${schema}.t (id INT NOT NULL PRIMARY KEY, v INT NOT NULL, note VARCHAR(40) NOT NULL)`;
const seedRow = (id: number): string => `(${id}, ${id % 97}, 'seed-${id}')`;

describe('snapshot and bootstrap', () => {
  let sandbox: Sandbox;
  let workDir: string;
  const daemons: Daemon[] = [];
  const connections: mysql.Connection[] = [];
  const seed = testSeed();

  beforeAll(async () => {
    console.log(`snapshot tests: seed ${seed} (replay with CDC_TEST_SEED=${seed})`);
    sandbox = await startSandbox({ regions: ['a', 'b', 'c'], redis: true });
    workDir = mkdtempSync(join(tmpdir(), 'cdc-snapshot-test-'));
  });

  afterEach(async () => {
    await Promise.allSettled(daemons.splice(0).map((d) => d.stop()));
    await Promise.allSettled(connections.splice(0).map((c) => c.end()));
  });

  afterAll(async () => {
    await sandbox?.stop();
    rmSync(workDir, { recursive: true, force: true });
  });

  async function open(options: RuntimeOptions): Promise<mysql.Connection> {
    const connection = await connect(options);
    connections.push(connection);
    return connection;
  }

  async function daemon(options: RuntimeOptions): Promise<Daemon> {
    const started = await startDaemon(options);
    daemons.push(started);
    return started;
  }

  it('publishes a 200k-row table under concurrent updates and deletes; the target ends equal to the source', async () => {
    const d = deployment(sandbox, ['a', 'b'], ['s1.t'], 'snap1');
    const A = d.options('a');
    const B = d.options('b');
    const a = await open(A);
    const b = await open(B);
    await a.query(tableDdl('s1'));
    await b.query(tableDdl('s1'));
    // Rows that exist before replication is set up: never captured, only a snapshot brings them to b.
    await seedRows(a, 's1.t', 1, 200_000, seedRow);
    await prepareRegion(A);
    await prepareRegion(B);
    await daemon(A);
    const target = await daemon(B);

    // Reference for the rate: reading the same chunks without publishing them.
    const reader = await connectMysql(A.mysql);
    const shape = tableShape((await describeTable(reader, 's1', 't'))!, 'test');
    let readStart = Date.now();
    let after = null;
    for (;;) {
      const rows = await readRange(reader, shape, 'a', after, null, 1000);
      if (rows.length === 0) break;
      after = rows[rows.length - 1]!.key;
    }
    const readSeconds = (Date.now() - readStart) / 1000;
    await reader.end();

    const writer = new Writer(await open(A), 's1.t', seededRandom(seed), {
      maxId: 200_000,
      newIdsFrom: 1_000_001,
      tag: 'a',
    }).start();
    await sleep(500);
    const logger = testLogger('snapshot');
    const store = await createCheckpointStore(A.checkpointStore);
    const progress = new LogProgress(logger, 'snapshot', 2_000);
    readStart = Date.now();
    const result = await runSnapshot({
      options: A,
      tables: [],
      chunkSize: 1000,
      chunksPerSecond: 0,
      restart: false,
      store,
      kafka: createKafka(A.kafka, logger),
      metrics: new DaemonMetrics({ defaultMetrics: false }),
      progress,
      logger,
    }).finally(() => {
      progress.stop();
      return store.close();
    });
    await sleep(1_000);
    const writes = await writer.stop();

    const table = result.tables[0]!;
    expect(table.completed).toBe(true);
    expect(table.skipped).toBe(0);
    const rate = table.rows / table.seconds;
    console.log(
      `snapshot rate: ${table.rows} rows in ${table.seconds.toFixed(2)} s = ${Math.round(rate)} rows/s ` +
        `(chunked read alone: ${Math.round(200_000 / readSeconds)} rows/s; snapshot/read ratio ${((rate * readSeconds) / 200_000).toFixed(2)}); ` +
        `${writes} concurrent writes`,
    );

    await waitForSameContent(
      new Map([
        ['a', a],
        ['b', b],
      ]),
      's1.t',
      COLUMNS,
      300_000,
    );
    expect(await content(b, 's1.t')).toBe(await content(a, 's1.t'));
    // The overlap really happened: snapshot rows that arrived after a newer version lost.
    const applied = await target.metrics.eventsAppliedTotal.get();
    const stale = applied.values
      .filter((v) => v.labels.table === 's1.t' && v.labels.result === 'stale')
      .reduce((sum, v) => sum + v.value, 0);
    expect(stale).toBeGreaterThan(0);
  });

  it('resumes a snapshot killed halfway from its checkpoint, missing no chunk', async () => {
    const d = deployment(sandbox, ['a', 'b'], ['s2.t'], 'snap2');
    const A = d.options('a');
    const B = d.options('b');
    const a = await open(A);
    const b = await open(B);
    await a.query(tableDdl('s2'));
    await b.query(tableDdl('s2'));
    const total = 60_000;
    await seedRows(a, 's2.t', 1, total, seedRow);
    await prepareRegion(A);
    await prepareRegion(B);
    await daemon(A);
    await daemon(B);
    const configFile = writeConfigFile(workDir, d.yaml, 'snap2.yaml');
    const key = snapshotCheckpointKey('s2', 't');

    const first = runCliProcess([
      'snapshot',
      '--config',
      configFile,
      '--region',
      'a',
      '--chunk-size',
      '500',
      '--chunks-per-second',
      '20',
      '--progress-interval',
      '500',
      '--metrics-port',
      '0',
    ]);
    // Kill once the checkpoint shows some chunks done (a crash mid-snapshot).
    await waitForCheckpoint(async () => {
      const text = await loadCheckpointText(A, key);
      return (
        text !== undefined &&
        decodeSnapshotState(text, key).rows >= 5_000 &&
        first.output().includes('"msg":"snapshot progress"')
      );
    }, first);
    // The rows published so far are exported while the snapshot runs.
    const port = /"port":(\d+),"msg":"serving \/metrics"/.exec(first.output())?.[1];
    expect(port).toBeDefined();
    const metrics = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    const published = /^cdc_snapshot_rows_total\{region="a",table="s2\.t"\} (\d+)$/m.exec(metrics);
    expect(Number(published?.[1])).toBeGreaterThan(0);
    first.child.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');
    expect(first.output()).toContain('"msg":"snapshot progress"');
    const saved = decodeSnapshotState((await loadCheckpointText(A, key))!, key);
    expect(saved.done).toBe(false);
    expect(saved.rows).toBeLessThan(total);

    // Ctrl-C: stops after the current chunk, saves, says how to go on.
    const second = runCliProcess([
      'snapshot',
      '--config',
      configFile,
      '--region',
      'a',
      '--chunk-size',
      '500',
      '--chunks-per-second',
      '20',
    ]);
    await waitForCheckpoint(
      async () =>
        decodeSnapshotState((await loadCheckpointText(A, key))!, key).rows >= saved.rows + 5_000,
      second,
    );
    second.child.kill('SIGINT');
    expect(await second.exited).toBe(1);
    expect(second.output()).toContain(`resumed after key ${JSON.stringify(saved.after)}`);
    expect(second.output()).toContain('snapshot interrupted: run the same command again to resume');
    const interrupted = decodeSnapshotState((await loadCheckpointText(A, key))!, key);
    expect(interrupted.done).toBe(false);
    expect(interrupted.rows).toBeGreaterThanOrEqual(saved.rows + 5_000);

    const third = runCliProcess(['snapshot', '--config', configFile, '--region', 'a']);
    expect({ code: await third.exited, output: third.output() }).toMatchObject({ code: 0 });
    expect(third.output()).toContain(`resumed after key ${JSON.stringify(interrupted.after)}`);
    expect(third.output()).toContain(`${total - interrupted.rows} rows published`);
    const done = decodeSnapshotState((await loadCheckpointText(A, key))!, key);
    expect(done).toMatchObject({ done: true, rows: total });

    // Every key reached Kafka as an op=r event: the three runs together miss nothing.
    const messages = await readTopicsToEnd(A.kafka.brokers, [
      topicName(A.kafka.topicPrefix, 'a', 's2', 't'),
    ]);
    const ids = new Set(
      messages
        .map((m) => JSON.parse(m.value) as ChangeEvent)
        .filter((e) => e.op === 'r')
        .map((e) => e.pk.id),
    );
    expect(ids.size).toBe(total);
    await waitForSameContent(
      new Map([
        ['a', a],
        ['b', b],
      ]),
      's2.t',
      COLUMNS,
      180_000,
    );
    expect(await content(b, 's2.t')).toBe(await content(a, 's2.t'));
  });

  it('bootstraps an empty third region while the two running regions keep taking writes', async () => {
    const before = deployment(sandbox, ['a', 'b'], ['s3.t'], 'boot');
    const after = deployment(sandbox, ['a', 'b', 'c'], ['s3.t'], 'boot');
    const a = await open(before.options('a'));
    const b = await open(before.options('b'));
    const c = await open(after.options('c'));
    const rows = 20_000;
    for (const connection of [a, b]) {
      await connection.query(tableDdl('s3'));
      // The same data in both running regions, loaded before replication was set up.
      await seedRows(connection, 's3.t', 1, rows, seedRow);
    }
    await prepareRegion(before.options('a'));
    await prepareRegion(before.options('b'));
    const running = new Map<string, Daemon>([
      ['a', await startDaemon(before.options('a'))],
      ['b', await startDaemon(before.options('b'))],
    ]);
    const writers = [
      new Writer(await open(before.options('a')), 's3.t', seededRandom(seed + 1), {
        maxId: rows,
        newIdsFrom: 1_000_001,
        tag: 'a',
      }).start(),
      new Writer(await open(before.options('b')), 's3.t', seededRandom(seed + 2), {
        maxId: rows,
        newIdsFrom: 2_000_001,
        tag: 'b',
      }).start(),
    ];
    try {
      await sleep(2_000);
      // Step 1: the running regions learn about c (rolling restart with the new file).
      for (const region of ['a', 'b']) {
        await running.get(region)!.stop();
        running.set(region, await startDaemon(after.options(region)));
      }
      // Step 2: bootstrap c from a (tables, prepare, snapshot), then start c's daemon.
      const configFile = writeConfigFile(workDir, after.yaml, 'boot.yaml');
      let stdout = '';
      let stderr = '';
      const code = await runCli(
        ['bootstrap', '--config', configFile, '--region', 'c', '--from', 'a'],
        {
          stdout: { write: (t: string) => (stdout += t) },
          stderr: { write: (t: string) => (stderr += t) },
        },
        { CDC_LOG_LEVEL: 'warn' },
      );
      expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
      expect(stdout).toContain('bootstrap c: created s3.t from a');
      expect(stdout).toContain(`bootstrap c: snapshot of a s3.t:`);
      running.set('c', await startDaemon(after.options('c')));
      await sleep(3_000);
    } finally {
      await Promise.all(writers.map((w) => w.stop()));
    }
    try {
      await waitForSameContent(
        new Map([
          ['a', a],
          ['b', b],
          ['c', c],
        ]),
        's3.t',
        COLUMNS,
        300_000,
      );
      const expected = await content(a, 's3.t');
      expect(await content(b, 's3.t')).toBe(expected);
      expect(await content(c, 's3.t')).toBe(expected);
    } finally {
      await Promise.allSettled([...running.values()].map((d) => d.stop()));
    }
  });
});

/** Polls until `reached` while the CLI process runs; fails with its output otherwise. */
async function waitForCheckpoint(
  reached: () => Promise<boolean>,
  cli: ReturnType<typeof runCliProcess>,
): Promise<void> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (await reached()) return;
    if (cli.child.exitCode !== null) throw new Error(`snapshot ended early:\n${cli.output()}`);
    if (Date.now() > deadline) throw new Error(`no progress:\n${cli.output()}`);
    await sleep(100);
  }
}

/** Runs the built CLI as its own process (so it can be SIGKILLed), collecting its output. */
function runCliProcess(args: string[]): {
  child: ReturnType<typeof spawn>;
  exited: Promise<number | string>;
  output: () => string;
} {
  let output = '';
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, CDC_LOG_LEVEL: 'info' },
  });
  child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<number | string>((resolve) =>
    child.once('close', (code, signal) => resolve(code ?? signal ?? 'unknown')),
  );
  return { child, exited, output: () => output };
}
