/**
 * `prepare` checks the governed tables against their policies before
 * changing anything (checkPolicyTable, docs/GOVERNANCE.md "Configuration"):
 * a masked column too narrow for its mask, NOT NULL under `nullify`, or a
 * primary key whose tombstone key capture cannot compute (eviction notices
 * name rows by it) stops it, naming table, column and type.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mysql from 'mysql2/promise';
import { runCli } from '../../../src/cli/program.js';
import { connectionOptions, startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { sandboxConfigYaml } from '../../support/config.js';

jest.setTimeout(120_000);

const KEY = 'prepare-check-key-0123456789';

const GOVERNANCE = `governance:
  zones: { home: [us-east] }
  policies:
    - name: people-home
      tables: [app.people]
      residency:
        column: country
        rules:
          - { in: [DE], zone: home }
        default: all
      masking:
        email: { hmac: { key: '\${CDC_MASK_KEY}' } }
        phone: nullify
    - name: visits-home
      tables: [app.visits]
      residency: { default: home }
`;

describe('prepare checks governed tables against their policies', () => {
  let sandbox: Sandbox;
  let db: mysql.Connection;
  let dir: string;
  let configFile: string;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: ['us-east'], kafka: false, redis: false });
    db = await mysql.createConnection(connectionOptions(sandbox.mysql[0]!));
    await db.query('CREATE DATABASE app');
    await db.query(
      'CREATE TABLE app.people (id INT PRIMARY KEY, country CHAR(2), email VARCHAR(32), phone VARCHAR(20) NOT NULL)',
    );
    await db.query('CREATE TABLE app.visits (at DATETIME(3) PRIMARY KEY, note VARCHAR(20))');
    dir = mkdtempSync(join(tmpdir(), 'governance-prepare-'));
    configFile = join(dir, 'config.yaml');
    writeFileSync(
      configFile,
      sandboxConfigYaml(sandbox, { tables: ['app.people', 'app.visits'], extraYaml: GOVERNANCE }),
    );
  });

  afterAll(async () => {
    await db?.end();
    await sandbox?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  async function prepare(): Promise<{ code: number; stdout: string; stderr: string }> {
    let stdout = '';
    let stderr = '';
    const code = await runCli(
      ['prepare', '--config', configFile, '--region', 'us-east'],
      {
        stdout: { write: (t: string) => (stdout += t) },
        stderr: { write: (t: string) => (stderr += t) },
      },
      { CDC_MASK_KEY: KEY },
    );
    return { code, stdout, stderr };
  }

  it('refuses before changing anything, naming every problem without values or key', async () => {
    const { code, stdout, stderr } = await prepare();
    expect(code).toBe(1);
    expect(stdout).toBe('');
    expect(stderr).toContain(
      'cdc-replicator prepare: region us-east: the governed tables do not fit their policies (3 problems):',
    );
    expect(stderr).toContain(
      'app.visits.at (datetime(3)): a primary-key column of a table governed by policy visits-home must be an integer, CHAR/VARCHAR/TEXT, BINARY/VARBINARY or DECIMAL column',
    );
    expect(stderr).toContain(
      'app.people.email (varchar(32)): too narrow for the hmac mask of policy people-home',
    );
    expect(stderr).toMatch(/app\.people\.phone \(varchar\(20\)\).*NOT NULL/);
    expect(stderr).not.toContain(KEY);
    const [schemas] = await db.query<mysql.RowDataPacket[]>(
      "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '_cdc'",
    );
    expect(schemas).toEqual([]);
  });

  it('prepares once the table fits', async () => {
    await db.query(
      'ALTER TABLE app.people MODIFY email VARCHAR(255), MODIFY phone VARCHAR(20) NULL',
    );
    await db.query('ALTER TABLE app.visits MODIFY at BIGINT');
    const { code, stderr } = await prepare();
    expect(stderr).not.toContain('do not fit');
    expect(code).toBe(0);
  });
});
