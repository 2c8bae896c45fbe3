import { spawn } from 'node:child_process';

import { describe, expect, it, jest } from '@jest/globals';

import { CLI } from '../../support/daemon-process.js';
import { dockerTestsEnabled } from '../../support/sandbox-modes.js';

jest.setTimeout(240_000);

/** `CDC_SANDBOX=docker npm run demo -- --duration 20`, as docs/DOCKER.md tells a newcomer. */
function runDockerDemo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'demo', ...args], {
      env: { ...process.env, CDC_LOG_LEVEL: 'info', CDC_SANDBOX: 'docker' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

(dockerTestsEnabled() ? describe : describe.skip)(
  'cdc-replicator demo on the docker sandbox',
  () => {
    it('CDC_SANDBOX=docker --duration 20 runs its services as containers and converges', async () => {
      const { code, out } = await runDockerDemo(['--duration', '20']);
      if (code !== 0) throw new Error(`demo exited ${code}:\n${out}`);
      expect(out).toMatch(/sandbox mode: docker \(CDC_SANDBOX=docker\)/);
      expect(out).toMatch(/sandbox containers ready in \d+ ms/);
      expect(out).toMatch(/us-east→eu-west lag \d+\.\d\d s, [1-9]\d* ev\/s/);
      expect(out).toMatch(/eu-west→us-east lag \d+\.\d\d s, [1-9]\d* ev\/s/);
      expect(out).toMatch(
        /CONVERGED: us-east and eu-west hold identical data \(shop\.customers 200 rows, shop\.orders \d+ rows\)/,
      );
      expect(out).toMatch(/done in [\d.]+ s/);
    });
  },
);
