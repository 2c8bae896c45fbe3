import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runCli } from './program.js';

const VALID = `regions:
  us-east:
    mysql: { host: 127.0.0.1, port: 3307, user: root, password: "" }
  eu-west:
    mysql: { host: 127.0.0.1, port: 3308, user: root, password: "\${EU_PW}" }
    metrics: { port: 9465 }
kafka: { brokers: ["127.0.0.1:9092"], topicPrefix: cdc }
redis: { url: "redis://127.0.0.1:6379" }
pipelines:
  - name: app
    tables: ["app.users", "app.orders"]
    conflict: { strategy: lww }
metrics: { port: 9464 }
`;

const INVALID = `regions:
  us-east:
    mysql: { host: 127.0.0.1, user: root, password: "\${EU_PW}", pasword: x }
kafka: { brokers: ["127.0.0.1:9092"] }
pipelines:
  - name: app
    tables: ["app"]
`;

const SECRET = 'eu-Secret-42';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdc-cli-test-'));
  await writeFile(join(dir, 'valid.yaml'), VALID);
  await writeFile(join(dir, 'invalid.yaml'), INVALID);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(argv: string[], env: Record<string, string> = { EU_PW: SECRET }): Promise<Run> {
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

describe('cdc-replicator', () => {
  it('prints help and exits 0 with --help', async () => {
    const { code, stdout } = await run(['--help']);
    expect(code).toBe(0);
    expect(stdout).toContain('Usage: cdc-replicator');
    expect(stdout).toContain('validate');
  });

  it('prints the package version with --version', async () => {
    const packageJson = JSON.parse(
      await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as { version: string };
    const { code, stdout } = await run(['--version']);
    expect(code).toBe(0);
    expect(stdout.trim()).toBe(packageJson.version);
  });

  it.each([[['bogus']], [['validate']], [['validate', '--config', 'valid.yaml', '--bogus']], [[]]])(
    'exits 2 on the usage error %j',
    async (argv) => {
      const { code, stderr } = await run(argv);
      expect(code).toBe(2);
      expect(stderr).not.toBe('');
    },
  );
});

describe('cdc-replicator validate', () => {
  it('prints a summary and exits 0 for a valid file', async () => {
    const { code, stdout, stderr } = await run(['validate', '--config', 'valid.yaml']);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toBe(
      [
        'valid.yaml: configuration OK',
        '  regions (2): us-east, eu-west',
        '  pipelines (1): app [lww]',
        '  tables (2): app.users, app.orders',
        '',
      ].join('\n'),
    );
  });

  it('shows the resolved options of --region without revealing secrets', async () => {
    const { code, stdout } = await run(['validate', '-c', 'valid.yaml', '--region', 'eu-west']);
    expect(code).toBe(0);
    expect(stdout).toContain('region eu-west:');
    expect(stdout).toContain('  metrics: 0.0.0.0:9465');
    expect(stdout).toContain('  mysql: root@127.0.0.1:3308 (password set)');
    expect(stdout).toContain('  checkpoints: redis (key prefix cdc:eu-west:)');
    expect(stdout).not.toContain(SECRET);
  });

  it('takes the region from CDC_REGION', async () => {
    const { code, stdout } = await run(['validate', '-c', 'valid.yaml'], {
      EU_PW: SECRET,
      CDC_REGION: 'us-east',
    });
    expect(code).toBe(0);
    expect(stdout).toContain('region us-east:');
  });

  it('exits 2 for an unknown region', async () => {
    const { code, stdout, stderr } = await run(['validate', '-c', 'valid.yaml', '-r', 'ap-south']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toContain(
      'region "ap-south" is not defined in the configuration (regions: us-east, eu-west)',
    );
  });

  it('prints every problem to stderr and exits 2 for an invalid file', async () => {
    const { code, stdout, stderr } = await run(['validate', '--config', 'invalid.yaml']);
    expect(code).toBe(2);
    expect(stdout).toBe('');
    expect(stderr).toBe(
      [
        'invalid.yaml: invalid configuration (2 problems)',
        '  regions.us-east.mysql.pasword (line 3:65): unknown key "pasword"',
        '  pipelines[0].tables[0] (line 7:14): "app" is not schema.table',
        '',
      ].join('\n'),
    );
    expect(stderr).not.toContain(SECRET);
  });

  it('exits 2 when the file cannot be read', async () => {
    const { code, stderr } = await run(['validate', '--config', 'missing.yaml']);
    expect(code).toBe(2);
    expect(stderr).toContain('ENOENT');
  });
});
