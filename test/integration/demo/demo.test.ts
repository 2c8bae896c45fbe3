import { spawn } from 'node:child_process';

import { describe, expect, it, jest } from '@jest/globals';

import { CLI } from '../../support/daemon-process.js';

jest.setTimeout(240_000);

/** Runs the built CLI the way a newcomer does and collects what it prints. */
function runDemo(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, 'demo', ...args], {
      env: { ...process.env, CDC_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => resolve({ code, out }));
  });
}

describe('cdc-replicator demo', () => {
  it('--duration 20 replicates a two-way workload, reports convergence and exits 0', async () => {
    const { code, out } = await runDemo(['--duration', '20']);
    if (code !== 0) throw new Error(`demo exited ${code}:\n${out}`);
    // A live line per second with both pairs, replication visibly flowing.
    expect(out).toMatch(/us-east→eu-west lag \d+\.\d\d s, [1-9]\d* ev\/s/);
    expect(out).toMatch(/eu-west→us-east lag \d+\.\d\d s, [1-9]\d* ev\/s/);
    expect(out).toMatch(
      /CONVERGED: us-east and eu-west hold identical data \(shop\.customers 200 rows, shop\.orders \d+ rows\)/,
    );
    expect(out).toMatch(/\d+ concurrent write\(s\) resolved by last-writer-wins/);
    expect(out).toMatch(/done in [\d.]+ s/);
  });

  it('Ctrl-C ends the workload early, still checks convergence, and cleans up', async () => {
    const child = spawn(process.execPath, [CLI, 'demo'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (out += chunk.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', resolve));
    const deadline = Date.now() + 120_000;
    while (!/\[\d+\.\d s\] writes us-east [1-9]/.test(out) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    const code = await exited;
    if (code !== 0) throw new Error(`demo exited ${code} after Ctrl-C:\n${out}`);
    expect(out).toMatch(/interrupted: workload stopped; checking convergence/);
    expect(out).toMatch(/CONVERGED/);
    expect(out).toMatch(/stopping daemons and services/);
  });
});
