/**
 * The governance tests' shared setup (issue 16, docs/GOVERNANCE.md): three
 * regions, two of them in zone eu, the issue's policy with an hmac key from
 * the environment, the `app.people` table and rows of each residency.
 */
import { execFile, type ChildProcess } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startCluster, type Cluster } from './cluster.js';
import { CLI, writeConfigFile } from './daemon-process.js';

export const GOVERNED_REGIONS = ['eu-west', 'eu-central', 'us-east'];
export const MASK_KEY = 'governance-test-key-0123456789-abcdef';

/** `governance:` for the cluster's YAML. */
export const GOVERNANCE_YAML = `governance:
  zones: { eu: [eu-west, eu-central] }
  policies:
    - name: people-eu
      tables: [app.people]
      residency:
        column: country
        rules:
          - { in: [DE, FR], zone: eu, masked: [us-east] }
          - { in: [CH], zone: eu }
        default: all
      masking:
        email: { hmac: { key: '\${CDC_MASK_KEY}' } }
        phone: nullify
        note: { redact: '***' }
        name: { truncate: 1 }
    - name: vault-nowhere
      tables: [app.vault]
      residency: { default: none }
`;

export const GOVERNED_DDL = [
  'CREATE DATABASE app',
  `CREATE TABLE app.people (
     id INT PRIMARY KEY,
     country CHAR(2) NOT NULL,
     email VARCHAR(255),
     phone VARCHAR(32),
     note TEXT,
     name VARCHAR(100)
   ) DEFAULT CHARSET = utf8mb4`,
  'CREATE TABLE app.vault (id INT PRIMARY KEY, secret VARCHAR(64))',
];

/** Plain in the zone, masked in us-east. */
export const DE = {
  id: 1,
  country: 'DE',
  email: 'anna.schmidt.7731@example.de',
  phone: '+49 30 5550 1937',
  note: 'Prefers contact by letter, Schlossallee 12',
  name: 'Anna Schmidtbauer',
};
/** In the zone only. */
export const CH = {
  id: 2,
  country: 'CH',
  email: 'urs.meierhans.4410@example.ch',
  phone: '+41 44 5550 2846',
  note: 'Account under review, Bahnhofstrasse 8',
  name: 'Urs Meierhans',
};
/** Plain everywhere. */
export const US = {
  id: 3,
  country: 'US',
  email: 'jo.public@example.com',
  phone: '+1 212 555 0100',
  note: 'plain everywhere',
  name: 'Jo Public',
};

/** The hmac mask, computed from its definition: HMAC-SHA256 over the UTF-8 text, lowercase hex. */
export const hmacHex = (text: string): string =>
  createHmac('sha256', Buffer.from(MASK_KEY, 'utf8'))
    .update(Buffer.from(text, 'utf8'))
    .digest('hex');

/** DE as us-east must hold it: each masked column through its mask. */
export const DE_MASKED = {
  id: DE.id,
  country: 'DE',
  email: hmacHex(DE.email),
  phone: null,
  note: '***',
  name: 'A',
};

/** What a CLI run printed and how it exited. */
export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** The governance tests' cluster and a configuration file for the CLI. */
export interface GovernedCluster {
  readonly cluster: Cluster;
  readonly configFile: string;
  /** `cdc-replicator <command> --config <file> ...args` as an operator runs it (the built CLI, the key from the environment). */
  cli(
    command: string,
    args: readonly string[],
    started?: (child: ChildProcess) => void,
  ): Promise<CliResult>;
  stop(): Promise<void>;
}

/**
 * Three regions (two in zone eu), `app.people` and `app.vault` under the
 * policies above, daemons in this process (or not, with `startDaemons`),
 * and the cluster's YAML in a scratch file for the CLI.
 */
export async function startGovernedCluster(
  name: string,
  keepDir: () => boolean,
  settings: { startDaemons?: boolean; extraYaml?: string } = {},
): Promise<GovernedCluster> {
  const cluster = await startCluster({
    regions: GOVERNED_REGIONS,
    tables: ['app.people', 'app.vault'],
    ddl: GOVERNED_DDL,
    extraYaml: `${settings.extraYaml ?? ''}${GOVERNANCE_YAML}`,
    env: { CDC_MASK_KEY: MASK_KEY },
    keepDir,
    ...(settings.startDaemons === undefined ? {} : { startDaemons: settings.startDaemons }),
  });
  const dir = mkdtempSync(join(tmpdir(), `cdc-${name}-`));
  const configFile = writeConfigFile(dir, cluster.yaml);
  return {
    cluster,
    configFile,
    cli: (command, args, started) =>
      new Promise((resolve) => {
        const child = execFile(
          process.execPath,
          [CLI, command, '--config', configFile, ...args],
          { env: { ...process.env, CDC_MASK_KEY: MASK_KEY }, maxBuffer: 64 * 1024 * 1024 },
          (error, stdout, stderr) => {
            const code = error === null ? 0 : typeof error.code === 'number' ? error.code : -1;
            resolve({ code, stdout, stderr });
          },
        );
        started?.(child);
      }),
    stop: async () => {
      await cluster.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
