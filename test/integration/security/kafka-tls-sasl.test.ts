/**
 * TLS and SASL to Kafka for real: the sandbox broker with an extra SASL_SSL
 * listener serving a certificate from a throwaway CA, one user known to PLAIN
 * and to both SCRAM mechanisms. The replicator's own Kafka client, built from
 * `kafka.tls` and `kafka.sasl` as `run` compiles them, must create a topic,
 * produce and consume with each mechanism, and be refused with a clear reason
 * for a wrong password or a server certificate another CA signed.
 */
import { jest } from '@jest/globals';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { createKafka, ensureTopics } from '../../../src/bus/kafka.js';
import { compileRegion, type KafkaOptions } from '../../../src/config/compile.js';
import { parseConfig } from '../../../src/config/load.js';
import { CdcError } from '../../../src/core/errors.js';
import { startSandbox, type Sandbox } from '../../../src/sandbox/index.js';
import { testLogger } from '../../support/logger.js';
import { makeCa, makeServerCert } from './certs.js';

// One broker start for the file; the JVM is slow on a shared 2-core machine.
jest.setTimeout(300_000);

const USER = 'cdc';
const PASSWORD = 'kafka-sasl-pw';

describe('TLS and SASL to Kafka', () => {
  let dir: string;
  let sandbox: Sandbox;
  let secureBroker: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cdc-kafka-tls-'));
    makeCa(dir, 'good');
    makeCa(dir, 'other');
    makeServerCert(dir, 'good');
    writeFileSync(join(dir, 'kafka-password'), `${PASSWORD}\n`);
    sandbox = await startSandbox({
      regions: [],
      redis: false,
      kafkaHeapMb: 384,
      kafkaSecurity: {
        certFile: join(dir, 'server.pem'),
        keyFile: join(dir, 'server.key'),
        users: [{ username: USER, password: PASSWORD }],
      },
    });
    const broker = sandbox.kafka?.secureBrokers?.[0];
    if (broker === undefined) throw new Error('the sandbox opened no SASL_SSL listener');
    secureBroker = broker;
  });

  afterAll(async () => {
    await sandbox?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  /** The region's Kafka options as `run` would compile them from a file in `dir`. */
  function kafkaOptions(tls: string, sasl: string): KafkaOptions {
    const yaml = `
regions:
  r1:
    mysql: { host: 127.0.0.1, user: root, password: "" }
kafka:
  brokers: ["${secureBroker}"]
  tls: ${tls}
  sasl: ${sasl}
pipelines:
  - name: app
    tables: ["app.*"]
`;
    return compileRegion(parseConfig(yaml, { env: {} }), 'r1', { baseDir: dir }).kafka;
  }

  /** Creates `topic`, produces one message and reads it back, all through `createKafka`. */
  async function roundTrip(options: KafkaOptions, topic: string): Promise<string> {
    const kafka = createKafka(options, testLogger('kafka-tls-sasl'));
    const admin = kafka.admin();
    await admin.connect();
    try {
      expect(await ensureTopics(admin, [topic], options.topics)).toEqual([topic]);
    } finally {
      await admin.disconnect();
    }
    const producer = kafka.producer();
    await producer.connect();
    try {
      await producer.send({ topic, messages: [{ key: 'k', value: `hello over ${topic}` }] });
    } finally {
      await producer.disconnect();
    }
    const consumer = kafka.consumer({ groupId: `${topic}-reader` });
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      return await new Promise<string>((resolve, reject) => {
        consumer
          .run({ eachMessage: ({ message }) => Promise.resolve(resolve(String(message.value))) })
          .catch(reject);
      });
    } finally {
      await consumer.disconnect();
    }
  }

  /** What connecting a producer fails with, as the capture stage would see it. */
  async function connectError(options: KafkaOptions): Promise<CdcError> {
    const producer = createKafka(options, testLogger('kafka-tls-sasl')).producer();
    try {
      await producer.connect();
    } catch (err) {
      expect(err).toBeInstanceOf(CdcError);
      return err as CdcError;
    } finally {
      await producer.disconnect();
    }
    throw new Error('the connection was accepted');
  }

  it.each(['plain', 'scram-sha-256', 'scram-sha-512'])(
    'produces and consumes over TLS with SASL %s',
    async (mechanism) => {
      const options = kafkaOptions(
        '{ caFile: good-ca.pem }',
        `{ mechanism: ${mechanism}, username: ${USER}, password: ${PASSWORD} }`,
      );
      const topic = `tls-${mechanism}`;
      expect(await roundTrip(options, topic)).toBe(`hello over ${topic}`);
    },
  );

  it('reads the SASL password from passwordFile', async () => {
    const options = kafkaOptions(
      '{ caFile: good-ca.pem }',
      `{ mechanism: scram-sha-512, username: ${USER}, passwordFile: kafka-password }`,
    );
    expect(await roundTrip(options, 'tls-password-file')).toBe('hello over tls-password-file');
  });

  it('refuses a wrong password, naming the broker and that authentication failed', async () => {
    for (const mechanism of ['plain', 'scram-sha-256', 'scram-sha-512'] as const) {
      const err = await connectError(
        kafkaOptions(
          '{ caFile: good-ca.pem }',
          `{ mechanism: ${mechanism}, username: ${USER}, password: not-${PASSWORD} }`,
        ),
      );
      console.log(`wrong ${mechanism} password: ${err.message}`);
      // Not retriable: the daemon's start must fail, not wait for Kafka forever.
      expect(err).toMatchObject({ retriable: false });
      expect(err.message).toContain(`Kafka ${secureBroker} (TLS, SASL ${mechanism} as ${USER})`);
      expect(err.message).toMatch(/authentication failed/i);
      expect(err.message).not.toContain(PASSWORD);
    }
  });

  it('refuses a broker whose certificate another CA signed, saying why', async () => {
    const err = await connectError(
      kafkaOptions(
        '{ caFile: other-ca.pem }',
        `{ mechanism: scram-sha-256, username: ${USER}, password: ${PASSWORD} }`,
      ),
    );
    console.log(`wrong CA: ${err.message}`);
    expect(err).toMatchObject({ retriable: false, code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    expect(err.message).toContain(`Kafka ${secureBroker} (TLS,`);
    expect(err.message).toMatch(/unable to verify the first certificate/);
  });
});
