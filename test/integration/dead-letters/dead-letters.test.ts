/**
 * `cdc-replicator dead-letters` against real services: an event that breaks
 * a secondary unique key in the target is parked; `list` and `show` find it
 * (and list a record that is not a dead letter at all as undecodable, and a
 * capture dead letter as such); once the conflicting row is fixed,
 * `replay --dry-run` writes nothing, `replay` applies the event through the
 * applier's join so both regions hold the same row and version, and a second
 * `replay` reports it stale and changes nothing. Nothing leaves the
 * dead-letter topic, and the reader's consumer groups are gone afterwards.
 */
import { jest } from '@jest/globals';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { runCli } from '../../../src/cli/program.js';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { uniqueName } from '../../support/config.js';

jest.setTimeout(300_000);

const DB = uniqueName('dlq');
const TABLE = `${DB}.users`;
const DDL = [
  `CREATE DATABASE ${DB}`,
  `CREATE TABLE ${TABLE} (id INT PRIMARY KEY, name VARCHAR(50), score INT, UNIQUE KEY (name))`,
];

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

describe('cdc-replicator dead-letters', () => {
  let cluster: Cluster;
  let dir: string;
  let east: mysql.Connection;
  let west: mysql.Connection;

  beforeAll(async () => {
    cluster = await startCluster({ regions: ['east', 'west'], ddl: DDL, tables: [TABLE] });
    east = await cluster.db('east');
    west = await cluster.db('west');
    dir = await mkdtemp(join(tmpdir(), 'cdc-dlq-it-'));
    await writeFile(join(dir, 'pipeline.yaml'), cluster.yaml);
  });

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== undefined) await rm(dir, { recursive: true, force: true });
  });

  async function cli(...args: string[]): Promise<Run> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(
      ['dead-letters', ...args, '--config', 'pipeline.yaml'],
      {
        stdout: { write: (text: string) => (stdout += text) },
        stderr: { write: (text: string) => (stderr += text) },
      },
      { CDC_LOG_LEVEL: 'error' },
      { cwd: dir },
    );
    return { code, stdout, stderr };
  }

  function kafka(): Kafka {
    return new Kafka({
      clientId: 'dlq-test',
      brokers: cluster.sandbox.kafka?.brokers ?? [],
      logLevel: logLevel.NOTHING,
    });
  }

  async function row(connection: mysql.Connection, id: number): Promise<unknown> {
    const [rows] = await connection.query<mysql.RowDataPacket[]>(
      `SELECT id, name, score, CAST(_cdc_ts AS CHAR) AS ts FROM ${TABLE} WHERE id = ?`,
      [id],
    );
    return rows[0];
  }

  async function capturedByWest(): Promise<number> {
    const metric = await cluster.daemons.get('west')!.metrics.eventsCapturedTotal.get();
    return metric.values
      .filter((v) => v.labels.table === TABLE)
      .reduce((sum, v) => sum + v.value, 0);
  }

  it('lists a parked event, replays it once its cause is fixed, and a second replay changes nothing', async () => {
    // 1. Dead letters: both regions insert the name "dup" under different ids
    // while neither applies, so each region's copy of the other's row collides.
    for (const region of ['east', 'west']) cluster.daemons.get(region)!.apply!.pause();
    await west.query(`INSERT INTO ${TABLE} VALUES (10, 'dup', 1)`);
    await east.query(`INSERT INTO ${TABLE} VALUES (11, 'dup', 5)`);
    await east.query(`INSERT INTO ${TABLE} VALUES (12, 'after', 1)`);
    for (const region of ['east', 'west']) cluster.daemons.get(region)!.apply!.resume();
    const parked = async (region: string): Promise<number> => {
      const metric = await cluster.daemons.get(region)!.metrics.deadLetterTotal.get();
      return metric.values.find((v) => v.labels.reason === 'constraint_violation')?.value ?? 0;
    };
    await waitFor(
      async () =>
        (await parked('west')) === 1 &&
        (await parked('east')) === 1 &&
        (await tableContent(west, TABLE)).includes('after'),
      60_000,
      async () =>
        `dead letters west ${await parked('west')} east ${await parked('east')}, west ${await tableContent(west, TABLE)}`,
    );
    expect(await row(west, 11)).toBeUndefined();

    // Two more records: one that is no dead letter at all, one in capture's format.
    const producer = kafka().producer();
    await producer.connect();
    await producer.send({
      topic: 'cdc._dlq.apply.west',
      messages: [{ key: 'junk', value: 'not a dead letter' }],
    });
    await producer.send({
      topic: 'cdc._dlq.capture.west',
      messages: [
        {
          key: 'row_undecodable',
          value: JSON.stringify({
            stage: 'capture',
            region: 'west',
            reason: 'row_undecodable',
            error: 'unsupported column type',
            source: { schema: DB, table: 'users', op: 'insert', gtid: '0-2-9', row: { id: 99 } },
          }),
        },
      ],
    });
    await producer.disconnect();

    // 2. list finds all three, each for what it is.
    const listed = await cli('list', '--region', 'west', '--json');
    expect(listed.code).toBe(0);
    const letters = JSON.parse(listed.stdout) as Record<string, unknown>[];
    expect(letters).toHaveLength(3);
    const letter = letters.find((l) => l['reason'] === 'constraint_violation');
    expect(letter).toMatchObject({
      kind: 'apply',
      stage: 'apply',
      region: 'west',
      table: TABLE,
      sourceRegion: 'east',
      source: { topic: `cdc.east.${TABLE}` },
      event: { op: 'c', region: 'east', pk: { id: 11 }, after: { id: 11, name: 'dup', score: 5 } },
    });
    expect(letter?.['error']).toContain('Duplicate entry');
    expect(letters).toContainEqual(
      expect.objectContaining({ kind: 'undecodable', excerpt: 'not a dead letter' }),
    );
    expect(letters).toContainEqual(
      expect.objectContaining({ kind: 'capture', reason: 'row_undecodable', table: TABLE }),
    );
    const table = await cli('list', '--region', 'west', '--reason', 'constraint_violation');
    expect(table.code).toBe(0);
    const at = `${String(letter?.['topic'])}:${String(letter?.['partition'])}:${String(letter?.['offset'])}`;
    expect(table.stdout).toContain(at);
    expect(table.stdout).toContain(TABLE);
    expect(table.stdout).not.toContain('undecodable');

    // show prints it in full, by its location.
    const shown = await cli(
      'show',
      '--topic',
      String(letter?.['topic']),
      '--partition',
      String(letter?.['partition']),
      '--offset',
      String(letter?.['offset']),
    );
    expect(shown.code).toBe(0);
    expect(shown.stdout).toContain(`dead letter ${at}`);
    expect(shown.stdout).toContain('reason:      constraint_violation');
    expect(shown.stdout).toContain('"name": "dup"');

    const only = ['--region', 'west', '--stage', 'apply', '--reason', 'constraint_violation'];
    // Before the fix the event is still invalid, and says why.
    const early = await cli('replay', '--dry-run', ...only);
    expect(early.code).toBe(1);
    expect(early.stdout).toContain('still invalid: constraint_violation');
    expect(early.stdout).toContain('dry run: would replay 0, stale 0, still failing 1');

    // 3. Fix the cause: west's row gives up the name (and so reaches east as a newer write).
    await west.query(`UPDATE ${TABLE} SET name = 'dup-west' WHERE id = 10`);
    await waitFor(
      async () => (await tableContent(east, TABLE)).includes('dup-west'),
      30_000,
      () => tableContent(east, TABLE),
    );
    const capturedBefore = await capturedByWest();
    const westBefore = await tableContent(west, TABLE);

    // 4. A dry run reports what would happen and writes nothing.
    const dry = await cli('replay', '--dry-run', ...only);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain(`${at} ${TABLE}: would apply`);
    expect(dry.stdout).toContain('dry run: would replay 1, stale 0, still failing 0');
    expect(await tableContent(west, TABLE)).toBe(westBefore);
    expect(await row(west, 11)).toBeUndefined();

    // 5. The replay applies it: west now holds east's row with east's version.
    const replayed = await cli('replay', ...only);
    expect(replayed.code).toBe(0);
    expect(replayed.stdout).toContain(`${at} ${TABLE}: applied`);
    expect(replayed.stdout).toContain('replayed 1, stale 0, still failing 0');
    expect(await row(west, 11)).toEqual(await row(east, 11));
    expect(await row(west, 11)).toMatchObject({ id: 11, name: 'dup', score: 5 });
    const westAfter = await tableContent(west, TABLE);
    expect(await tableContent(east, TABLE)).toBe(westAfter);

    // 6. A second replay finds it applied and changes nothing.
    const again = await cli('replay', '--json', ...only);
    expect(again.code).toBe(0);
    expect(JSON.parse(again.stdout)).toMatchObject({
      dryRun: false,
      replayed: 0,
      stale: 1,
      failing: 0,
      results: [{ result: 'stale', offset: letter?.['offset'], table: TABLE }],
    });
    expect(await tableContent(west, TABLE)).toBe(westAfter);
    expect(await row(west, 11)).toEqual(await row(east, 11));

    // east's dead letter (west's first insert of id 10) was overtaken by the rename: stale.
    const overtaken = await cli('replay', '--region', 'east', '--stage', 'apply');
    expect(overtaken.code).toBe(0);
    expect(overtaken.stdout).toContain(`${TABLE}: stale`);
    expect(overtaken.stdout).toContain('replayed 0, stale 1, still failing 0');
    expect(await tableContent(east, TABLE)).toBe(westAfter);

    // The replayed write is an applier write: west's capture never publishes it back.
    await sleep(2_000);
    expect(await capturedByWest()).toBe(capturedBefore);

    // 7. Without filters the other two are reported as not replayable (exit 1), and
    // nothing was removed from the topics.
    const everything = await cli('replay', '--region', 'west');
    expect(everything.code).toBe(1);
    expect(everything.stdout).toContain('stale: already applied');
    expect(everything.stdout).toContain('cannot replay: the record cannot be decoded (not JSON');
    expect(everything.stdout).toContain(
      `cannot replay: a capture dead letter holds a binlog row that could not be turned into a change event`,
    );
    expect(everything.stdout).toContain('replayed 0, stale 1, still failing 2');
    const after = JSON.parse((await cli('list', '--region', 'west', '--json')).stdout) as unknown[];
    expect(after).toHaveLength(3);

    // The throwaway reader groups were deleted.
    const admin = kafka().admin();
    await admin.connect();
    try {
      const { groups } = await admin.listGroups();
      expect(groups.map((g) => g.groupId).filter((g) => g.includes('_dlq-reader'))).toEqual([]);
    } finally {
      await admin.disconnect();
    }
  });
});
