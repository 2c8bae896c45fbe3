/**
 * `verify` under governance policies (issue 16, docs/GOVERNANCE.md
 * "Verify"): three regions, two of them in zone eu, the governance tests'
 * policy (test/support/governance.ts), daemons in this process, verify run
 * as `cdc-replicator verify` in its own process (its stdout and its log).
 *
 * - Once replication converged, verify exits 0 although us-east holds the
 *   DE row masked: masked columns are compared through their masks; and so
 *   it does while eu-west and us-east keep writing governed rows (changes
 *   in flight, masked copies catching up, are rechecked, not reported).
 * - A masked column corrupted in us-east (plaintext in one, another hash in
 *   another) and CH rows written straight into us-east (outside capture)
 *   are reported, with one-row chunks too, exit 1, and nothing verify prints holds a governed value
 *   or the key.
 * - `--repair` repairs them through the governed path (the zone's original
 *   at a new version over the corrupted masked copy, notices for the CH
 *   rows), after which verify exits 0.
 */
import { jest } from '@jest/globals';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type mysql from 'mysql2/promise';
import { startCluster, tableContent, waitFor, type Cluster } from '../../support/cluster.js';
import { CLI, writeConfigFile } from '../../support/daemon-process.js';
import {
  CH,
  DE,
  DE_MASKED,
  GOVERNANCE_YAML,
  GOVERNED_DDL,
  GOVERNED_REGIONS,
  MASK_KEY,
  US,
  hmacHex,
} from '../../support/governance.js';

jest.setTimeout(300_000);

/** A CH row written in us-east outside capture: it may live only in zone eu. */
const SMUGGLED = {
  id: 20,
  country: 'CH',
  email: 'smuggled.person.6612@example.ch',
  phone: '+41 31 5550 4410',
  note: 'smuggled note Marktgasse 5',
  name: 'Smuggled Personname',
};

/** Every governed value verify must never print (plaintexts and masked values alike). */
const GOVERNED_VALUES = [
  DE.email,
  DE.phone,
  DE.note,
  DE.name,
  CH.email,
  CH.phone,
  CH.note,
  CH.name,
  SMUGGLED.email,
  SMUGGLED.phone,
  SMUGGLED.note,
  SMUGGLED.name,
  DE_MASKED.email,
  hmacHex('a value that is no one’s email'),
  MASK_KEY,
];

describe('verify under governance policies (3 regions, two in zone eu)', () => {
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
    dir = mkdtempSync(join(tmpdir(), 'cdc-governed-verify-'));
    configFile = writeConfigFile(dir, cluster.yaml);
  });

  afterAll(async () => {
    await cluster?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** `cdc-replicator verify` in its own process, its log at debug level. */
  function verify(args: string[] = []): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(
        process.execPath,
        [
          CLI,
          'verify',
          '--config',
          configFile,
          '--recheck-delay',
          '500',
          '--rechecks',
          '2',
          ...args,
        ],
        {
          env: { ...process.env, CDC_MASK_KEY: MASK_KEY, CDC_LOG_LEVEL: 'debug' },
          maxBuffer: 64 * 1024 * 1024,
        },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  async function rowsOf(region: string): Promise<mysql.RowDataPacket[]> {
    const db = await cluster.db(region);
    const [rows] = await db.query<mysql.RowDataPacket[]>(
      'SELECT id, country, email, phone, note, name FROM app.people ORDER BY id',
    );
    return rows;
  }

  it('exits 0 once replication converged, with the DE row masked in us-east', async () => {
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
      await waitFor(
        async () => (await rowsOf('us-east')).map((r) => Number(r.id)).join(',') === '1,3',
        60_000,
        async () => `us-east holds ${JSON.stringify(await rowsOf('us-east'))}`,
      );
      expect({ ...(await rowsOf('us-east'))[0] }).toEqual(DE_MASKED);

      const result = await verify();
      expect(result.stdout).toContain(
        'verify eu-west,eu-central,us-east: regions match; 2 tables (2 governed: compared row by row through the masks), 3 rows in 2 chunks',
      );
      expect(result.code).toBe(0);
      for (const value of GOVERNED_VALUES) {
        expect(result.stdout).not.toContain(value);
        expect(result.stderr).not.toContain(value);
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('reports nothing while eu-west and us-east keep writing governed rows (no false divergence through the masks)', async () => {
    try {
      const euWest = await cluster.db('eu-west');
      const usEast = await cluster.db('us-east');
      const countries = ['DE', 'FR', 'CH', 'US', 'BR'];
      const ids = Array.from({ length: 200 }, (_, i) => 1000 + i);
      for (const id of ids)
        await euWest.query('INSERT INTO app.people SET ?', [
          {
            id,
            country: countries[id % countries.length],
            email: `person.${id}@example.org`,
            phone: `+49 ${id}`,
            note: `note ${id}`,
            name: `Person ${id}`,
          },
        ]);
      // Residency never changes here (eviction is not built); only masked and other columns do.
      let stop = false;
      let writes = 0;
      const writer = (async () => {
        for (let n = 0; !stop; n += 1) {
          const id = ids[(n * 37) % ids.length] as number;
          await euWest.query('UPDATE app.people SET email = ?, name = ? WHERE id = ?', [
            `changed.${n}@example.org`,
            `Changed ${n}`,
            id,
          ]);
          // us-east may write rows plain everywhere (country US or BR).
          const own = ids.filter((i) => i % 5 >= 3)[n % 80] as number;
          await usEast.query('UPDATE app.people SET note = ? WHERE id = ?', [`us ${n}`, own]);
          writes += 2;
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
      })();
      const runs: { code: number; stdout: string }[] = [];
      try {
        for (let i = 0; i < 3; i += 1)
          runs.push(
            await verify(['--chunk-size', '50', '--recheck-delay', '1500', '--rechecks', '3']),
          );
      } finally {
        stop = true;
        await writer;
      }
      console.log(`governed verify under writes: ${writes} writes, ${runs.length} runs`);
      for (const run of runs) {
        expect(run.stdout).toContain('regions match');
        expect(run.code).toBe(0);
      }
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('reports a corrupted masked column and a row held where it may not be, printing no value', async () => {
    try {
      const usEast = await cluster.db('us-east');
      // Outside capture (no binlog) and past the write guards (posing as the applier, whose
      // sessions they let through): plaintext in one masked column, another hash in another.
      await usEast.query('SET SESSION sql_log_bin = 0');
      await usEast.query('SET @cdc_applier = 1');
      await usEast.query('UPDATE app.people SET name = ?, email = ? WHERE id = 1', [
        DE.name,
        hmacHex('a value that is no one’s email'),
      ]);
      await usEast.query('INSERT INTO app.people SET ?', [SMUGGLED]);
      await usEast.query('INSERT INTO app.people SET ?', [{ ...SMUGGLED, id: 21 }]);
      await usEast.query('SET SESSION sql_log_bin = 1');
      await usEast.query('SET @cdc_applier = NULL');

      const result = await verify();
      const out = `${result.stdout}\n${result.stderr}`;
      expect(result.code).toBe(1);
      expect(result.stdout).toContain(
        'verify eu-west,eu-central,us-east: 1 divergent row, 3 rows held where not allowed; 2 tables',
      );
      const lines = result.stdout.split('\n');
      const corrupted = lines.findIndex((l) =>
        /^NOT ALLOWED app\.people key hmac:[0-9a-f]{64} \(policy people-eu\): us-east may hold this row only masked, but name holds what no mask produces \(plain values\); /.test(
          l,
        ),
      );
      expect(corrupted).toBeGreaterThanOrEqual(0);
      expect(lines.slice(corrupted + 1, corrupted + 6).join('\n')).toMatch(
        /eu-west {5}may hold plain {3}row {5}version eu-west@\d+[^\n]*\n {2}eu-central {2}may hold plain {3}row[^\n]*\n {2}us-east {5}may hold masked {2}row {5}version us-east@\d+[^\n]*\n {2}eu-west \/ us-east: columns email, name differ \(through the masks\)\n {2}eu-central \/ us-east: columns email, name differ \(through the masks\)/,
      );
      const smuggled = lines.findIndex((l) =>
        /^NOT ALLOWED app\.people key hmac:[0-9a-f]{64} \(policy people-eu\): us-east holds a row it may not hold/.test(
          l,
        ),
      );
      expect(smuggled).toBeGreaterThanOrEqual(0);
      expect(lines.slice(smuggled + 1, smuggled + 6).join('\n')).toContain(
        '  us-east     may not hold     row     version us-east@',
      );
      // Nothing else to say of it: the zone regions agree, us-east's copy is compared with nobody.
      expect(lines[smuggled]?.endsWith('us-east holds a row it may not hold')).toBe(true);
      // Never a value, never the key.
      for (const value of GOVERNED_VALUES) expect(out).not.toContain(value);
      expect(result.stdout).not.toMatch(/"id"|pk \{/);

      // One-row chunks along eu-west's 203 keys, plus the open last one and app.vault's;
      // (3, 1000] holds two rows in us-east (ids 20 and 21), so it is split along us-east's
      // keys into four; the verdicts are the same.
      const small = await verify(['--chunk-size', '1', '--chunks-per-second', '0']);
      expect(small.code).toBe(1);
      expect(small.stdout).toContain(
        'verify eu-west,eu-central,us-east: 1 divergent row, 3 rows held where not allowed; 2 tables (2 governed: compared row by row through the masks), 203 rows in 208 chunks',
      );
      const keys = (text: string) => text.match(/key hmac:[0-9a-f]{64}/g)?.sort();
      expect(keys(small.stdout)).toEqual(keys(result.stdout));
      for (const value of GOVERNED_VALUES)
        expect(`${small.stdout}${small.stderr}`).not.toContain(value);
    } catch (err) {
      failed = true;
      throw err;
    }
  });

  it('repairs them through the governed path (--repair), after which verify exits 0', async () => {
    try {
      const result = await verify(['--repair']);
      expect(result.code).toBe(1);
      const repairs = result.stdout.split('\n').filter((l) => l.startsWith('REPAIR'));
      // The corrupted masked copy: the zone's original, at a new version above us-east's write.
      expect(repairs).toContainEqual(
        expect.stringMatching(
          /^REPAIRED app\.people key hmac:[0-9a-f]{64}: new version written and published through the governed path in eu-west$/,
        ),
      );
      // The two CH rows us-east may not hold: a notice from the zone.
      expect(
        repairs.filter((l) =>
          /: eviction notice to the regions holding it where it may not be sent from eu-west$/.test(
            l,
          ),
        ),
      ).toHaveLength(2);
      expect(repairs).toHaveLength(3);
      for (const value of GOVERNED_VALUES)
        expect(`${result.stdout}${result.stderr}`).not.toContain(value);
      const usEast = await cluster.db('us-east');
      await waitFor(
        async () => {
          const [rows] = await usEast.query<mysql.RowDataPacket[]>(
            'SELECT id, email, name FROM app.people WHERE id IN (1, 20, 21) ORDER BY id',
          );
          return (
            JSON.stringify(rows) ===
            JSON.stringify([{ id: 1, email: DE_MASKED.email, name: DE_MASKED.name }])
          );
        },
        60_000,
        () => 'us-east still holds the corrupted copy or the CH rows',
      );
      const after = await verify(['--recheck-delay', '1000', '--rechecks', '3']);
      expect({ code: after.code, stdout: after.stdout }).toEqual({ code: 0, stdout: after.stdout });
    } catch (err) {
      failed = true;
      throw err;
    }
  });
});
