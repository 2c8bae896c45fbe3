import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { runCli } from '../program.js';

// Port 9 (discard) on loopback: nothing listens, so Kafka is unreachable at once.
const CONFIG = `regions:
  east:
    mysql: { host: 127.0.0.1, port: 3307, user: root, password: "" }
  west:
    mysql: { host: 127.0.0.1, port: 3308, user: root, password: "\${WEST_PW}" }
kafka: { brokers: ["127.0.0.1:9"], topicPrefix: cdc }
pipelines:
  - name: app
    tables: ["app.users"]
`;

let dir: string;

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'cdc-dlq-cli-'));
  await writeFile(join(dir, 'c.yaml'), CONFIG);
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(argv: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(
    argv,
    {
      stdout: { write: (text: string) => (stdout += text) },
      stderr: { write: (text: string) => (stderr += text) },
    },
    { CDC_LOG_LEVEL: 'silent' },
    { cwd: dir },
  );
  return { code, stdout, stderr };
}

describe('cdc-replicator dead-letters', () => {
  it('names every bad flag and exits 2 before connecting anywhere', async () => {
    const result = await run([
      'dead-letters',
      'list',
      '--config',
      'c.yaml',
      '--region',
      'east',
      '--stage',
      'apply,capture',
      '--since',
      'last week',
    ]);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('c.yaml: invalid configuration (2 problems)');
    expect(result.stderr).toContain('--stage: must be capture or apply, got "apply,capture"');
    expect(result.stderr).toContain('--since: must be an ISO 8601 time');
  });

  it('names an unknown region with the configured ones', async () => {
    const result = await run(['dead-letters', 'replay', '-c', 'c.yaml', '--region', 'north']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain(
      '--region: "north" is not a configured region (regions: east, west)',
    );
  });

  it('needs every region secret without --region, as status does', async () => {
    const result = await run(['dead-letters', 'show', '-c', 'c.yaml']);
    expect(result.code).toBe(2);
    expect(result.stderr).toContain('WEST_PW');
  });

  it('says which Kafka it could not reach and exits 1', async () => {
    const result = await run(['dead-letters', 'list', '-c', 'c.yaml', '--region', 'east']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^cdc-replicator dead-letters list: Kafka 127\.0\.0\.1:9: connecting the admin client: /,
    );
    expect(result.stdout).toBe('');
  }, 120_000);
});
