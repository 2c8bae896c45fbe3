import { createServer } from 'node:net';

/**
 * Asks the kernel for a free loopback port. Another process could take it
 * before the service binds, so callers treat a bind failure as retriable.
 */
export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.unref();
    server.once('error', reject);
    server.listen(0, host, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === 'object') resolve(address.port);
        else reject(new Error('could not determine a free port'));
      });
    });
  });
}

/** `count` distinct free ports. */
export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports = new Set<number>();
  while (ports.size < count) ports.add(await freePort(host));
  return [...ports];
}

/**
 * The ports a whole sandbox needs, taken one by one: one per region, two for
 * Kafka (broker, controller), one for Redis, and one for Kafka's SASL_SSL
 * listener when asked for. Taking more than that is a launcher bug.
 */
export async function sandboxPortPool(
  regions: number,
  secureKafkaListener: boolean,
): Promise<() => number> {
  const ports = await freePorts(regions + (secureKafkaListener ? 4 : 3));
  return () => {
    const port = ports.shift();
    if (port === undefined) throw new Error('port pool exhausted');
    return port;
  };
}
