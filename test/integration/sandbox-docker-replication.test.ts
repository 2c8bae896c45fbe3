// The docker sandbox's convergence test: test/integration/apply/replication.test.ts
// (two regions, both daemons, writes both ways until the regions converge) run
// again with every service in a container (CDC_SANDBOX=docker), so both
// launchers stay equivalent for the replicator. Skipped where no Docker engine
// with the sandbox images answers (see test/support/sandbox-modes.ts).
import { execFileSync } from 'node:child_process';
import { hostname } from 'node:os';
import { afterAll, expect, it } from '@jest/globals';
import { OWNER_LABEL } from '../../src/sandbox/docker/containers.js';
import { dockerTestsEnabled } from '../support/sandbox-modes.js';

if (dockerTestsEnabled()) {
  const previous = process.env.CDC_SANDBOX;
  // Read when the test's cluster starts (its beforeAll), after this module ran.
  process.env.CDC_SANDBOX = 'docker';
  const since = Math.floor(Date.now() / 1000) - 1;
  // Runs after the cluster stopped (top-level hooks run after the describe's):
  // proof that the services really ran as this process's containers.
  afterAll(() => {
    if (previous === undefined) delete process.env.CDC_SANDBOX;
    else process.env.CDC_SANDBOX = previous;
    const started = execFileSync(
      'docker',
      [
        'events',
        '--since',
        String(since),
        '--until',
        String(Math.ceil(Date.now() / 1000)),
        '--filter',
        'event=start',
        '--filter',
        `label=${OWNER_LABEL}=${hostname()}:${process.pid}`,
        '--format',
        '{{.Actor.Attributes.image}}',
      ],
      { encoding: 'utf8' },
    );
    const images = started.split('\n').filter((line) => line.length > 0);
    expect(images.length).toBe(4); // two MariaDB regions, Kafka, Redis
  });
  await import('./apply/replication.test.js');
} else {
  it.skip('replicates with the docker sandbox (no Docker engine with the sandbox images)', () => {
    /* skipped */
  });
}
