import { Kafka, logLevel } from 'kafkajs';
import { Redis } from 'ioredis';
import mysql from 'mysql2/promise';
import { connectionOptions, type KafkaEndpoint, type MySqlEndpoint } from './types.js';

/**
 * One readiness probe per kind of service, shared by the local and the
 * docker launcher: each resolves once the service answers, and throws
 * otherwise (the caller retries until its deadline).
 */

/** Resolves when the server answers `SELECT 1` on its endpoint. */
export async function probeSql(endpoint: MySqlEndpoint): Promise<void> {
  const connection = await mysql.createConnection({
    ...connectionOptions(endpoint),
    connectTimeout: 1000,
  });
  try {
    await connection.query('SELECT 1');
  } finally {
    await connection.end();
  }
}

/** Resolves when the broker has registered and a controller is elected. */
export function kafkaProbe(endpoint: KafkaEndpoint): () => Promise<void> {
  const kafka = new Kafka({
    clientId: 'sandbox-probe',
    brokers: endpoint.brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    retry: { retries: 0 },
  });
  return async () => {
    const admin = kafka.admin();
    try {
      await admin.connect();
      const cluster = await admin.describeCluster();
      if (cluster.brokers.length === 0 || cluster.controller === null) {
        throw new Error('no broker registered yet');
      }
    } finally {
      await admin.disconnect();
    }
  };
}

/** Resolves when Redis answers PING. */
export async function probeRedis(url: string): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 1000,
    // Without it ioredis keeps a 2 s timer alive after disconnect().
    disconnectTimeout: 200,
  });
  client.on('error', () => undefined); // failures surface through ping()
  try {
    await client.connect();
    const reply: string = await client.ping();
    if (reply !== 'PONG') throw new Error(`unexpected PING reply ${reply}`);
  } finally {
    client.disconnect();
  }
}
