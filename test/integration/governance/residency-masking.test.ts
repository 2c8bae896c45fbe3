/**
 * Governance, first enforced slice (issue 16, docs/GOVERNANCE.md): three
 * regions, two of them in zone eu, the issue's policy with an hmac key
 * from the environment, the daemons run as `cdc-replicator run`.
 *
 * - A restricted row (DE) written in eu-west is identical in eu-central and
 *   arrives in us-east masked, with the exact mask values (the hmac computed
 *   here independently); a CH row never reaches us-east.
 * - The plaintext of those rows is nowhere us-east can see: not in the
 *   topics it may read, its dead letters, its daemon's log or its binlog.
 * - A forged plain DE row on a topic us-east reads is refused there:
 *   dead letter `governance_refused` without the value, counted.
 *
 * Run once per capture envelope (2, the default, and 1): both route alike.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, logLevel } from 'kafkajs';
import type mysql from 'mysql2/promise';
import { compileGovernance } from '../../../src/config/compile-governance.js';
import { deadLetterTopic } from '../../../src/capture/capture-stage.js';
import { topicsReadableBy } from '../../../src/governance/topics.js';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import {
  daemonOutput,
  isRunning,
  startDaemonProcess,
  stopDaemonProcess,
  waitUntilRunning,
  writeConfigFile,
  type DaemonProcess,
} from '../../support/daemon-process.js';
import {
  CH,
  DE,
  GOVERNANCE_YAML,
  GOVERNED_DDL as DDL,
  GOVERNED_REGIONS,
  MASK_KEY,
  US,
  hmacHex,
} from '../../support/governance.js';
import { readTopicsToEnd } from '../../support/kafka.js';

jest.setTimeout(300_000);

const REGIONS = GOVERNED_REGIONS;
const PREFIX = 'cdc';

const FORGED = {
  id: 10,
  country: 'DE',
  email: 'forged.plaintext.9921@example.de',
  phone: '+49 89 5550 7777',
  note: 'forged note Leopoldstrasse 3',
  name: 'Forged Personname',
};

/** What us-east must never see: every masked column's plaintext of DE and CH, and everything of CH. */
const SECRETS = [DE.email, DE.phone, DE.note, DE.name, CH.email, CH.phone, CH.note, CH.name];

describe.each([2, 1])(
  'governance: residency and masking across three regions (two in zone eu), capture.envelope %i',
  (envelope) => {
    let cluster: Cluster;
    let dir: string;
    let configFile: string;
    const daemons = new Map<string, DaemonProcess>();
    let failed = false;
    const savedEnv = { key: process.env.CDC_MASK_KEY, level: process.env.CDC_LOG_LEVEL };

    beforeAll(async () => {
      cluster = await startCluster({
        regions: REGIONS,
        tables: ['app.people', 'app.vault'],
        ddl: DDL,
        extraYaml: `capture: { envelope: ${envelope} }\n${GOVERNANCE_YAML}`,
        env: { CDC_MASK_KEY: MASK_KEY },
        startDaemons: false,
        keepDir: () => failed,
      });
      dir = mkdtempSync(join(tmpdir(), 'cdc-governance-'));
      configFile = writeConfigFile(dir, cluster.yaml);
      // The daemons read the key from their environment, as in production; debug logs
      // so that the log check below covers everything the daemon can say.
      process.env.CDC_MASK_KEY = MASK_KEY;
      process.env.CDC_LOG_LEVEL = 'debug';
      try {
        for (const region of REGIONS)
          daemons.set(region, startDaemonProcess(configFile, region, join(dir, 'logs')));
        for (const daemon of daemons.values()) await waitUntilRunning(daemon, 90_000);
      } finally {
        process.env.CDC_LOG_LEVEL = savedEnv.level;
        if (savedEnv.key === undefined) delete process.env.CDC_MASK_KEY;
        else process.env.CDC_MASK_KEY = savedEnv.key;
      }
    });

    afterAll(async () => {
      for (const daemon of daemons.values())
        if (isRunning(daemon)) await stopDaemonProcess(daemon, 'SIGTERM').catch(() => undefined);
      await cluster?.stop();
      if (dir !== undefined && !failed) rmSync(dir, { recursive: true, force: true });
      else if (dir !== undefined) console.error(`daemon logs kept in ${dir}/logs`);
    });

    async function rowsOf(region: string): Promise<mysql.RowDataPacket[]> {
      const db = await cluster.db(region);
      const [rows] = await db.query<mysql.RowDataPacket[]>(
        'SELECT id, country, email, phone, note, name FROM app.people ORDER BY id',
      );
      return rows;
    }

    async function metricsOf(region: string): Promise<string> {
      const line = daemonOutput(daemons.get(region) as DaemonProcess)
        .split('\n')
        .find((l) => l.includes('"msg":"daemon running"'));
      const port = (JSON.parse(line ?? '{}') as { metricsPort?: number }).metricsPort;
      const response = await fetch(`http://127.0.0.1:${port}/metrics`);
      return response.text();
    }

    it('keeps a DE row plain in the zone, masks it exactly for us-east, and keeps a CH row out of us-east', async () => {
      try {
        const euWest = await cluster.db('eu-west');
        for (const row of [DE, CH, US]) await euWest.query('INSERT INTO app.people SET ?', [row]);

        const source = await tableContent(euWest, 'app.people');
        const euCentral = await cluster.db('eu-central');
        await waitFor(
          async () => (await tableContent(euCentral, 'app.people')) === source,
          60_000,
          async () => `eu-central holds ${await tableContent(euCentral, 'app.people')}`,
        );
        // The US row is plain everywhere: once it is in us-east, so is what came before it.
        await waitFor(
          async () => {
            const ids = (await rowsOf('us-east')).map((r) => Number(r.id));
            return ids.includes(1) && ids.includes(3);
          },
          60_000,
          async () => `us-east holds ${JSON.stringify(await rowsOf('us-east'))}`,
        );
        // A CH row published anywhere us-east reads would have arrived by now; give it more time anyway.
        await sleep(3_000);
        expect((await rowsOf('us-east')).map((r) => ({ ...r }))).toEqual([
          {
            id: 1,
            country: 'DE',
            email: hmacHex(DE.email),
            phone: null,
            note: '***',
            name: 'A',
          },
          US,
        ]);
      } catch (err) {
        failed = true;
        throw err;
      }
    });

    it('publishes a row no region may hold nowhere: counted, logged without its value', async () => {
      try {
        const secret = 'vault-secret-5521-never-published';
        const euWest = await cluster.db('eu-west');
        // The write guard refuses it in the database (docs/GOVERNANCE.md, "Writes outside the
        // plain regions"); posing as the applier gets past it, as a write that bypassed the
        // guards would, and capture's last line still publishes it nowhere.
        await expect(
          euWest.query('INSERT INTO app.vault SET ?', [{ id: 1, secret }]),
        ).rejects.toThrow('governance vault-nowhere: eu-west may not insert this row of app.vault');
        await euWest.query('SET @cdc_applier = 1');
        await euWest.query('INSERT INTO app.vault SET ?', [{ id: 1, secret }]);
        await euWest.query('SET @cdc_applier = NULL');
        const withheld =
          /cdc_capture_governance_withheld_total\{region="eu-west",table="app.vault",policy="vault-nowhere"\} 1\b/;
        await waitFor(
          async () => withheld.test(await metricsOf('eu-west')),
          30_000,
          async () =>
            (await metricsOf('eu-west'))
              .split('\n')
              .filter((l) => l.includes('withheld'))
              .join('\n'),
        );
        const log = daemonOutput(daemons.get('eu-west') as DaemonProcess);
        expect(log).toContain(
          'a row change of app.vault that no region may hold (policy vault-nowhere) was not published',
        );
        expect(log).not.toContain(secret);
        const brokers = cluster.sandbox.kafka?.brokers ?? [];
        const admin = new Kafka({ clientId: 'test', brokers, logLevel: logLevel.NOTHING }).admin();
        await admin.connect();
        const topics = (await admin.listTopics()).filter((t) => t.endsWith('.eu-west.app.vault'));
        await admin.disconnect();
        const published = topics.length === 0 ? [] : await readTopicsToEnd(brokers, topics);
        expect(published).toEqual([]);
        await sleep(2_000);
        for (const region of ['eu-central', 'us-east']) {
          const [rows] = await (
            await cluster.db(region)
          ).query<mysql.RowDataPacket[]>('SELECT id FROM app.vault');
          expect(rows).toEqual([]);
        }
      } catch (err) {
        failed = true;
        throw err;
      }
    });

    it('leaves the plaintext nowhere us-east can see: its topics, dead letters, log and binlog', async () => {
      try {
        const brokers = cluster.sandbox.kafka?.brokers ?? [];
        const governance = compileGovernance(cluster.config);
        const readable = topicsReadableBy(
          {
            topicPrefix: PREFIX,
            regions: REGIONS,
            zones: governance?.zones ?? {},
            policies: governance?.policies ?? [],
            tables: ['app.people'],
          },
          'us-east',
        ).map((t) => t.topic);
        expect(readable).toEqual(
          expect.arrayContaining([
            'cdc.eu-west.app.people',
            'cdc-masked-us-east.eu-west.app.people',
          ]),
        );
        const admin = new Kafka({ clientId: 'test', brokers, logLevel: logLevel.NOTHING }).admin();
        await admin.connect();
        const existing = new Set(await admin.listTopics());
        await admin.disconnect();
        // What eu-west published where: the masked copy exists, the zone topic carries the plaintext.
        expect(existing.has('cdc-masked-us-east.eu-west.app.people')).toBe(true);
        expect(existing.has('cdc-zone-eu.eu-west.app.people')).toBe(true);
        const zone = await readTopicsToEnd(brokers, ['cdc-zone-eu.eu-west.app.people']);
        expect(zone.map((m) => m.value).join('\n')).toContain(DE.email);

        const messages = await readTopicsToEnd(
          brokers,
          readable.filter((t) => existing.has(t)),
        );
        const seen = messages.map((m) => `${m.key}\n${m.value}`).join('\n');
        expect(seen).toContain(hmacHex(DE.email)); // the masked copy is there
        for (const secret of SECRETS) expect(seen).not.toContain(secret);

        const deadLetters = await readTopicsToEnd(brokers, [
          deadLetterTopic(PREFIX, 'apply', 'us-east'),
        ]);
        const letters = deadLetters.map((m) => m.value).join('\n');
        for (const secret of SECRETS) expect(letters).not.toContain(secret);

        const log = daemonOutput(daemons.get('us-east') as DaemonProcess);
        expect(log.length).toBeGreaterThan(0);
        for (const secret of [...SECRETS, MASK_KEY]) expect(log).not.toContain(secret);

        const binlog = await binlogBytes(await cluster.db('us-east'));
        expect(binlog.includes(Buffer.from(hmacHex(DE.email)))).toBe(true); // the search works
        for (const secret of SECRETS)
          expect(binlog.includes(Buffer.from(secret, 'utf8'))).toBe(false);
      } catch (err) {
        failed = true;
        throw err;
      }
    });

    it('refuses a forged plain DE row on a topic us-east reads: dead letter without the value, counted', async () => {
      try {
        const brokers = cluster.sandbox.kafka?.brokers ?? [];
        const kafka = new Kafka({ clientId: 'forger', brokers, logLevel: logLevel.NOTHING });
        const producer = kafka.producer();
        await producer.connect();
        const hlc = Date.now() * 1000;
        await producer.send({
          topic: 'cdc.eu-west.app.people',
          messages: [
            {
              key: `app.people:${JSON.stringify([FORGED.id])}`,
              value: JSON.stringify({
                v: 1,
                op: 'c',
                region: 'eu-west',
                db: 'app',
                table: 'people',
                pk: { id: FORGED.id },
                before: null,
                after: FORGED,
                hlc,
                origin: 'eu-west',
                vv: { 'eu-west': hlc },
                gtid: null,
                commitTs: Date.now(),
              }),
            },
          ],
        });
        await producer.disconnect();

        let records: { reason: string; error: string; value: unknown; source: { key: unknown } }[] =
          [];
        await waitFor(
          async () => {
            const read = await readTopicsToEnd(brokers, [
              deadLetterTopic(PREFIX, 'apply', 'us-east'),
            ]);
            records = read.map((m) => JSON.parse(m.value) as (typeof records)[number]);
            return records.some((r) => r.reason === 'governance_refused');
          },
          60_000,
          () => `us-east's dead letters: ${JSON.stringify(records)}`,
        );
        const refused = records.filter((r) => r.reason === 'governance_refused');
        expect(refused).toHaveLength(1);
        expect(refused[0]?.error).toBe(
          'policy people-eu: region us-east may hold this row only masked, but it came on a plain topic',
        );
        expect(refused[0]?.value).toBeNull();
        expect(refused[0]?.source.key).toBeNull();
        const metrics = await metricsOf('us-east');
        expect(metrics).toMatch(
          /cdc_dead_letter_total\{stage="apply",reason="governance_refused"\} 1\b/,
        );
        expect((await rowsOf('us-east')).some((r) => r.id === FORGED.id)).toBe(false);
        // eu-central may hold a DE row plainly: the same event is applied there.
        await waitFor(
          async () => (await rowsOf('eu-central')).some((r) => r.id === FORGED.id),
          30_000,
          () => 'the forged row never reached eu-central',
        );

        const forgedSecrets = [FORGED.email, FORGED.phone, FORGED.note, FORGED.name];
        const letters = JSON.stringify(records);
        const log = daemonOutput(daemons.get('us-east') as DaemonProcess);
        const binlog = await binlogBytes(await cluster.db('us-east'));
        for (const secret of forgedSecrets) {
          expect(letters).not.toContain(secret);
          expect(log).not.toContain(secret);
          expect(binlog.includes(Buffer.from(secret, 'utf8'))).toBe(false);
        }
      } catch (err) {
        failed = true;
        throw err;
      }
    });
  },
);

/** Every binlog file of the server, concatenated, as bytes (row events hold strings as stored). */
async function binlogBytes(db: mysql.Connection): Promise<Buffer> {
  await db.query('FLUSH BINARY LOGS');
  const [[row]] = await db.query<mysql.RowDataPacket[]>(
    'SELECT @@log_bin_basename AS base, @@datadir AS datadir',
  );
  const base = String(row?.base);
  const where = base.startsWith('/') ? dirname(base) : String(row?.datadir);
  const stem = basename(base);
  const files = readdirSync(where).filter((f) => f.startsWith(`${stem}.`) && /\.\d+$/.test(f));
  expect(files.length).toBeGreaterThan(0);
  return Buffer.concat(files.sort().map((f) => readFileSync(join(where, f))));
}
