import { chooseSandboxMode } from '../../src/sandbox/index.js';

/**
 * Whether this run also exercises the docker sandbox (the launcher tests, a
 * convergence test and the demo run in both modes; the rest of the suite runs
 * local, see build-dist.js). `CDC_TEST_DOCKER=1` requires it (a missing engine
 * or image fails those tests), `0` skips it; unset, it runs where a Docker
 * engine answers and has every sandbox image, as after scripts/docker-engine.sh
 * (CI), and is skipped elsewhere with a line saying why.
 */
export function dockerTestsEnabled(): boolean {
  const flag = process.env.CDC_TEST_DOCKER;
  if (flag === '1') return true;
  if (flag === '0') return false;
  const choice = chooseSandboxMode({ ...process.env, CDC_SANDBOX: '' });
  if (choice.mode !== 'docker') {
    console.warn(`docker-mode tests skipped: ${choice.reason}`);
    return false;
  }
  return true;
}

/** The sandbox modes a launcher test runs in: local, and docker when {@link dockerTestsEnabled}. */
export function sandboxModesUnderTest(): ('local' | 'docker')[] {
  return dockerTestsEnabled() ? ['local', 'docker'] : ['local'];
}
