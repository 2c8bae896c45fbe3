/**
 * The audit trail of governed rows (issue 16, docs/GOVERNANCE.md, "Audit
 * trail"), on the governance tests' three regions (two in zone eu) and the
 * issue's policy (test/support/governance.ts):
 *
 * - a DE, a CH and a US row written in eu-west, once applied, have exactly
 *   the records of what was sent where in eu-west's audit topic
 *   (`cdc._audit.eu-west`): targets, decisions, policy and its version, the
 *   row version and GTID of the published change, the key hash;
 *   a row no region may hold has one `withheld` record;
 * - no audit message holds any of the rows' values, nor the mask key;
 * - `cdc-replicator audit` (the built CLI) prints them, as lines and as
 *   JSON lines, says so when nothing matches, and exits 2 for a wrong
 *   table or key columns;
 * - `cdc_governance_decisions_total` counts the same decisions.
 */
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { compileGovernance } from '../../../src/config/compile-governance.js';
import {
  auditRecordId,
  auditTopic,
  decodeAuditMessage,
  formatAuditRecord,
  type AuditRecord,
} from '../../../src/governance/audit.js';
import { policyVersion } from '../../../src/governance/version.js';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { CLI, writeConfigFile } from '../../support/daemon-process.js';
import {
  CH,
  DE,
  GOVERNANCE_YAML,
  GOVERNED_DDL,
  GOVERNED_REGIONS,
  MASK_KEY,
  US,
  hmacHex,
} from '../../support/governance.js';
import { readTopicsToEnd, type ReadMessage } from '../../support/kafka.js';

jest.setTimeout(300_000);

const PREFIX = 'cdc';
const AUDIT_TOPIC = auditTopic(PREFIX, 'eu-west');
const VAULT_SECRET = 'vault-secret-8812-audited-never-published';
/** Every value of the three rows but their keys and residency (and the vault row's secret). */
const VALUES = [DE, CH, US].flatMap((r) => [r.email, r.phone, r.note, r.name]).concat(VAULT_SECRET);

/** The key hash of `id = n` under the policy's hmac key: HMAC over `<length>:<digits>`. */
const keyHashOf = (id: number): string => `hmac:${hmacHex(`${String(id).length}:${id}`)}`;

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

describe('governance: the audit trail of a governed table', () => {
  let cluster: Cluster;
  let dir: string;
  let configFile: string;
  let failed = false;

  beforeAll(async () => {
    cluster = await startCluster({
      regions: GOVERNED_REGIONS,
      tables: ['app.people', 'app.vault'],
      ddl: GOVERNED_DDL,
      extraYaml: GOVERNANCE_YAML,
      env: { CDC_MASK_KEY: MASK_KEY },
      keepDir: () => failed,
    });
    dir = mkdtempSync(join(tmpdir(), 'cdc-audit-'));
    configFile = writeConfigFile(dir, cluster.yaml);
  });

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  const brokers = (): string[] => cluster.sandbox.kafka?.brokers ?? [];

  /** `cdc-replicator audit ...` as an operator runs it: the built CLI, the key from the environment. */
  function audit(...args: string[]): Promise<CliResult> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [CLI, 'audit', '--config', configFile, ...args],
        { env: { ...process.env, CDC_MASK_KEY: MASK_KEY, CDC_LOG_LEVEL: 'warn' } },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  /** The version and GTID each id was published with, from eu-west's data topics. */
  async function publishedVersions(): Promise<
    Map<number, { hlc: number; origin: string; gtid: string | null }>
  > {
    const messages = await readTopicsToEnd(brokers(), [
      'cdc-zone-eu.eu-west.app.people',
      'cdc.eu-west.app.people',
    ]);
    const versions = new Map<number, { hlc: number; origin: string; gtid: string | null }>();
    for (const m of messages) {
      const event = JSON.parse(m.value) as {
        op?: string;
        pk?: { id?: number };
        hlc: number;
        origin: string;
        gtid: string | null;
      };
      if (event.op !== 'c' || typeof event.pk?.id !== 'number') continue;
      versions.set(event.pk.id, { hlc: event.hlc, origin: event.origin, gtid: event.gtid });
    }
    return versions;
  }

  let raw: ReadMessage[] = [];
  let records: AuditRecord[] = [];

  it('has exactly one record per row and target region of what eu-west sent, with version and policy', async () => {
    try {
      const euWest = await cluster.db('eu-west');
      for (const row of [DE, CH, US]) await euWest.query('INSERT INTO app.people SET ?', [row]);
      // No region may hold a vault row, so its write guard refuses it: this session poses as
      // the applier to get past it, as a write that bypassed the guards would, so that
      // capture's last line (withheld, published nowhere) is what is audited.
      const bypass = await cluster.db('eu-west');
      await bypass.query('SET @cdc_applier = 1');
      await bypass.query('INSERT INTO app.vault SET ?', [{ id: 1, secret: VAULT_SECRET }]);
      const euCentral = await cluster.db('eu-central');
      const usEast = await cluster.db('us-east');
      const source = await tableContent(euWest, 'app.people');
      await waitFor(
        async () => (await tableContent(euCentral, 'app.people')) === source,
        60_000,
        async () => `eu-central holds ${await tableContent(euCentral, 'app.people')}`,
      );
      await waitFor(
        async () => {
          const [rows] = await usEast.query('SELECT id FROM app.people ORDER BY id');
          return JSON.stringify(rows) === JSON.stringify([{ id: 1 }, { id: 3 }]);
        },
        60_000,
        async () => `us-east holds ${await tableContent(usEast, 'app.people')}`,
      );
      // The records are acknowledged with their changes; the vault row went nowhere, so wait for its record.
      await waitFor(
        async () => {
          raw = await readTopicsToEnd(brokers(), [AUDIT_TOPIC]);
          return raw.some((m) => m.value.includes('"withheld"'));
        },
        30_000,
        () => `${AUDIT_TOPIC} holds ${raw.map((m) => m.value).join('\n')}`,
      );
      raw = await readTopicsToEnd(brokers(), [AUDIT_TOPIC]);
      // Capture writes audit batches (several records per message where a send holds several).
      for (const m of raw) expect(m.value.startsWith('{"v":1,"audit":[')).toBe(true);
      const decoded = raw.map((m) => decodeAuditMessage(m.value));
      expect(decoded.map((d) => d.problem)).not.toContain(expect.any(String));
      // At least once: a re-send would repeat a record, never add another.
      const unique = new Map(
        decoded.flatMap((d) => d.records ?? []).map((r) => [auditRecordId(r), r]),
      );
      records = [...unique.values()];

      const governance = compileGovernance(cluster.config);
      const policyOf = (name: string) => governance?.policies.find((p) => p.name === name);
      const people = policyVersion(policyOf('people-eu')!, governance?.zones ?? {});
      const vault = policyVersion(policyOf('vault-nowhere')!, governance?.zones ?? {});
      const versions = await publishedVersions();
      const expected = (id: number, target: string, decision: string) => {
        const v = versions.get(id);
        expect(v).toBeDefined();
        return {
          source: 'eu-west',
          target,
          decision,
          db: 'app',
          table: 'people',
          op: 'c',
          keyHash: keyHashOf(id),
          version: { hlc: v?.hlc, origin: 'eu-west' },
          gtid: v?.gtid,
          policy: 'people-eu',
          policyVersion: people,
        };
      };
      const shape = (r: AuditRecord) => {
        const { v, time, ...rest } = r;
        expect(v).toBe(1);
        expect(Number.isNaN(Date.parse(time))).toBe(false);
        return rest;
      };
      const byKey = (id: number) =>
        records
          .filter((r) => r.table === 'people' && r.keyHash === keyHashOf(id))
          .map(shape)
          .sort((a, b) => `${a.target}${a.decision}`.localeCompare(`${b.target}${b.decision}`));
      expect(byKey(DE.id)).toEqual([
        expected(DE.id, 'eu-central', 'sent'),
        expected(DE.id, 'us-east', 'sent_masked'),
      ]);
      // us-east may hold no CH row: it is told so by a value-free eviction notice.
      expect(byKey(CH.id)).toEqual([
        expected(CH.id, 'eu-central', 'sent'),
        expected(CH.id, 'us-east', 'notice'),
      ]);
      expect(byKey(US.id)).toEqual([
        expected(US.id, 'eu-central', 'sent'),
        expected(US.id, 'us-east', 'sent'),
      ]);
      const withheld = records.filter((r) => r.table === 'vault').map(shape);
      expect(withheld).toEqual([
        expect.objectContaining({
          target: '*',
          decision: 'withheld',
          policy: 'vault-nowhere',
          policyVersion: vault,
          // No hmac mask in this policy: SHA-256 of the same message.
          keyHash: `sha256:${createHash('sha256').update('1:1').digest('hex')}`,
        }),
      ]);
      expect(records).toHaveLength(7);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('holds none of the rows values, nor the mask key, in any audit message', () => {
    expect(raw.length).toBeGreaterThan(0);
    const text = raw.map((m) => `${m.key}\n${m.value}`).join('\n');
    for (const value of [...VALUES, MASK_KEY]) expect(text).not.toContain(value);
  });

  it('counts the decisions in cdc_governance_decisions_total', async () => {
    const metrics = await cluster.daemons.get('eu-west')!.metrics.registry.metrics();
    const count = (target: string, decision: string, table = 'app.people', policy = 'people-eu') =>
      new RegExp(
        `cdc_governance_decisions_total\\{source_region="eu-west",target_region="${target.replace('*', '\\*')}",table="${table}",policy="${policy}",decision="${decision}"\\} (\\d+)`,
      ).exec(metrics)?.[1];
    expect(count('eu-central', 'sent')).toBe('3');
    expect(count('us-east', 'sent_masked')).toBe('1');
    expect(count('us-east', 'sent')).toBe('1');
    expect(count('us-east', 'notice')).toBe('1');
    expect(count('*', 'withheld', 'app.vault', 'vault-nowhere')).toBe('1');
  });

  it('prints a row trail with cdc-replicator audit, as lines and as JSON lines', async () => {
    const lines = await audit('--table', 'app.people', '--key', `id=${DE.id}`);
    expect(lines).toMatchObject({ code: 0, stderr: '' });
    const mine = records.filter((r) => r.keyHash === keyHashOf(DE.id) && r.table === 'people');
    expect(lines.stdout.trim().split('\n').sort()).toEqual(mine.map(formatAuditRecord).sort());

    const json = await audit('--table', 'app.people', '--key', `id=${CH.id}`, '--json');
    expect(json.code).toBe(0);
    const printed = json.stdout
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as AuditRecord);
    expect(printed.map((r) => `${r.target} ${r.decision}`).sort()).toEqual([
      'eu-central sent',
      'us-east notice',
    ]);
    expect(printed).toEqual(
      expect.arrayContaining(
        records.filter((r) => r.keyHash === keyHashOf(CH.id) && r.table === 'people'),
      ),
    );
    // Only eu-west's topic: the same records.
    const one = await audit('--table', 'app.people', '--key', `id=${US.id}`, '--region', 'eu-west');
    expect(one.code).toBe(0);
    expect(one.stdout.trim().split('\n')).toHaveLength(2);
    for (const out of [lines, json, one])
      for (const value of [...VALUES, MASK_KEY])
        expect(out.stdout + out.stderr).not.toContain(value);
  });

  it('says so when nothing matches (exit 0), and refuses a wrong table or key (exit 2)', async () => {
    const none = await audit('--table', 'app.people', '--key', 'id=99');
    expect(none.code).toBe(0);
    expect(none.stdout).toBe(
      `no audit record of app.people key ${keyHashOf(99)} in cdc._audit.eu-west, cdc._audit.eu-central, cdc._audit.us-east\n`,
    );
    const wrongKey = await audit('--table', 'app.people', '--key', `email=${DE.email}`);
    expect(wrongKey.code).toBe(2);
    expect(wrongKey.stderr).toContain(
      '--key: the primary key of app.people is (id); --key names (email)',
    );
    expect(wrongKey.stderr).not.toContain(DE.email);
    const unknown = await audit('--table', 'app.nothing', '--key', 'id=1');
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('--table: app.nothing is not a table of any pipeline');
  });
});
