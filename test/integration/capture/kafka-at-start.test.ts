import { jest } from '@jest/globals';
import { setTimeout as sleep } from 'node:timers/promises';
import { topicName } from '../../../src/bus/envelope.js';
import { Daemon } from '../../../src/daemon/daemon.js';
import { connectMysql } from '../../../src/mysql/connection.js';
import { applyPrepare, planPrepare } from '../../../src/prepare/prepare.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { sandboxRegionOptions } from '../../support/config.js';
import { changeEvents, readTopics } from '../../support/kafka.js';
import { testLogger } from '../../support/logger.js';

jest.setTimeout(180_000);

describe('capture: Kafka unreachable when the daemon starts', () => {
  let sandbox: Sandbox;
  let daemon: Daemon | undefined;

  beforeAll(async () => {
    sandbox = await startSandbox({ regions: ['solo'], redis: false });
  });

  afterAll(async () => {
    await daemon?.stop().catch(() => undefined); // a failed start has nothing left to stop
    await sandbox?.stop();
  });

  it('waits for Kafka instead of exiting, then captures normally', async () => {
    const stateDir = `${sandbox.dir}/state`;
    const { options } = sandboxRegionOptions(sandbox, 'solo', { tables: ['late.t'], stateDir });
    const admin = await connectMysql(options.mysql);
    await admin.query('CREATE DATABASE late');
    await admin.query('CREATE TABLE late.t (id INT PRIMARY KEY, v VARCHAR(10))');
    await applyPrepare(admin, await planPrepare(admin, options, options.internalSchema));

    await sandbox.services.kafka!.stop();
    daemon = new Daemon({ options, logger: testLogger('kafka-at-start') });
    let started = false;
    const starting = daemon.start().then(() => (started = true));
    await sleep(8_000);
    expect(started).toBe(false); // still waiting, not failed
    expect(daemon.state).toBe('starting');

    await sandbox.services.kafka!.start();
    await starting;
    expect(daemon.state).toBe('running');

    await admin.query("INSERT INTO late.t VALUES (1, 'after')");
    await admin.end();
    const events = changeEvents(
      await readTopics(
        sandbox.kafka!.brokers,
        [topicName('cdc', 'solo', 'late', 't')],
        (m) => m.length >= 1,
        60_000,
      ),
    );
    expect(events.map((e) => e.after)).toEqual([{ id: 1, v: 'after' }]);
  });
});
