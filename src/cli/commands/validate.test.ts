import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runCli } from '../program.js';

const KEY = 'mask-Key-0123456789-secret';

const GOVERNED = `regions:
  us-east:
    mysql: { host: db, user: root, password: "" }
  eu-west:
    mysql: { host: db, user: root, password: "" }
  eu-central:
    mysql: { host: db, user: root, password: "" }
kafka: { brokers: ["k:9092"] }
pipelines:
  - { name: app, tables: [app.people, app.orders] }
governance:
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
`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdc-validate-test-'));
  await writeFile(join(dir, 'governed.yaml'), GOVERNED);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(argv: string[], env: Record<string, string>) {
  let stdout = '';
  let stderr = '';
  const code = await runCli(
    argv,
    {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
    },
    env,
    { cwd: dir },
  );
  return { code, stdout, stderr };
}

describe('cdc-replicator validate with a governance section', () => {
  it('prints the policies and the topics each region may read, never the key', async () => {
    const { code, stdout, stderr } = await run(['validate', '-c', 'governed.yaml'], {
      CDC_MASK_KEY: KEY,
    });
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(
      [
        'governed.yaml: configuration OK',
        '  regions (3): us-east, eu-west, eu-central',
        '  pipelines (1): app [lww]',
        '  tables (2): app.people, app.orders',
        '  zones (1): eu = eu-west, eu-central',
        '  policies (1):',
        '    people-eu on app.people: by country: DE|FR -> zone eu, masked in us-east; CH -> zone eu; otherwise all; masks email hmac, phone nullify',
        '  topics each region may read (mirror them to it and grant it read; nothing else of the governed tables):',
        '    us-east: prefixes cdc.eu-west. cdc.eu-central. cdc-masked-us-east.',
        '      cdc.eu-west.app.people  (people-eu: unrestricted rows and notices)',
        '      cdc.eu-west.app.orders',
        '      cdc-masked-us-east.eu-west.app.people  (people-eu: masked)',
        '      cdc.eu-central.app.people  (people-eu: unrestricted rows and notices)',
        '      cdc.eu-central.app.orders',
        '      cdc-masked-us-east.eu-central.app.people  (people-eu: masked)',
        '    eu-west: prefixes cdc.us-east. cdc.eu-central. cdc-zone-eu.',
        '      cdc.us-east.app.people  (people-eu: unrestricted rows and notices)',
        '      cdc.us-east.app.orders',
        '      cdc-zone-eu.us-east.app.people  (people-eu: plain, zone eu)',
        '      cdc.eu-central.app.people  (people-eu: unrestricted rows and notices)',
        '      cdc.eu-central.app.orders',
        '      cdc-zone-eu.eu-central.app.people  (people-eu: plain, zone eu)',
        '    eu-central: prefixes cdc.us-east. cdc.eu-west. cdc-zone-eu.',
        '      cdc.us-east.app.people  (people-eu: unrestricted rows and notices)',
        '      cdc.us-east.app.orders',
        '      cdc-zone-eu.us-east.app.people  (people-eu: plain, zone eu)',
        '      cdc.eu-west.app.people  (people-eu: unrestricted rows and notices)',
        '      cdc.eu-west.app.orders',
        '      cdc-zone-eu.eu-west.app.people  (people-eu: plain, zone eu)',
        '',
      ].join('\n'),
    );
    expect(stdout).not.toContain(KEY);
  });

  it('stops with the variable and where it is used when the key is not set', async () => {
    const { code, stdout, stderr } = await run(['validate', '-c', 'governed.yaml'], {});
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      [
        'governed.yaml: invalid configuration (1 problem)',
        '  governance.policies[0].masking.email.hmac.key (line 23:31): environment variable CDC_MASK_KEY is not set (use ${CDC_MASK_KEY:-default} to allow that)',
        '',
      ].join('\n'),
    );
  });
});

describe('commands that move or print data under governance policies', () => {
  beforeAll(async () => {
    // Earlier versions needed governance.preview: true; such files still load.
    await writeFile(
      join(dir, 'preview.yaml'),
      GOVERNED.replace('governance:\n', 'governance:\n  preview: true\n'),
    );
  });

  it.each([
    [['prepare', '-c', 'governed.yaml', '-r', 'eu-west']],
    [['snapshot', '-c', 'governed.yaml', '-r', 'eu-west']],
    [['prepare', '-c', 'preview.yaml', '-r', 'eu-west']],
    [['snapshot', '-c', 'preview.yaml', '-r', 'eu-west']],
  ])(
    '%j starts, with or without the old preview flag (it then fails on the unreachable database)',
    async (argv) => {
      const { code, stderr } = await run(argv, { CDC_MASK_KEY: KEY });
      expect(stderr).not.toContain('refuses to start');
      expect(stderr).not.toContain('invalid configuration');
      expect(code).toBe(1);
      expect(stderr).not.toContain(KEY);
    },
    30_000,
  );

  it('lets verify, with --repair of governed tables too, past the governance check (it then fails on the unreachable database)', async () => {
    for (const argv of [
      ['verify', '-c', 'governed.yaml'],
      ['verify', '-c', 'governed.yaml', '--repair'],
      ['verify', '-c', 'governed.yaml', '--repair', '--tables', 'app.orders,app.people'],
    ]) {
      const { code, stderr } = await run(argv, { CDC_MASK_KEY: KEY });
      expect(stderr).not.toContain('refus');
      expect(code).toBe(1);
      expect(stderr).not.toContain(KEY);
    }
  }, 60_000);
});
