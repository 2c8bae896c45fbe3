import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { MetricsOptions } from '../config/compile.js';
import { CdcError } from '../core/errors.js';
import type { DaemonMetrics } from './metrics.js';

export interface Readiness {
  ready: boolean;
  /** What is not ready, for the /readyz body. */
  reasons: string[];
}

/**
 * `/metrics` (Prometheus text), `/healthz` (the process is alive) and
 * `/readyz` (ready to do its job; the body names what is not) on the
 * metrics port.
 */
export class MetricsServer {
  #server: Server | undefined;

  constructor(
    private readonly options: MetricsOptions,
    private readonly metrics: DaemonMetrics,
    private readonly readiness: () => Readiness,
  ) {}

  async start(): Promise<number> {
    const server = createServer((req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path === '/metrics') {
        this.metrics.registry
          .metrics()
          .then((text) => {
            res.writeHead(200, { 'content-type': this.metrics.registry.contentType });
            res.end(text);
          })
          .catch((err: unknown) => {
            res.writeHead(500, { 'content-type': 'text/plain' });
            res.end(`metrics unavailable: ${err instanceof Error ? err.message : String(err)}\n`);
          });
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' });
        res.end('ok\n');
        return;
      }
      if (path === '/readyz') {
        const readiness = this.readiness();
        res.writeHead(readiness.ready ? 200 : 503, { 'content-type': 'text/plain' });
        res.end(
          readiness.ready
            ? 'ready\n'
            : `not ready:\n${readiness.reasons.map((r) => `- ${r}\n`).join('')}`,
        );
        return;
      }
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found: try /metrics, /healthz or /readyz\n');
    });
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', (err: NodeJS.ErrnoException) =>
        reject(
          new CdcError(
            `metrics server cannot listen on ${this.options.host}:${this.options.port}: ${err.message}` +
              (err.code === 'EADDRINUSE'
                ? ' (another daemon on this machine? give each region its own metrics.port)'
                : ''),
            { cause: err, code: 'METRICS_PORT' },
          ),
        ),
      );
      server.listen(this.options.port, this.options.host, () => resolve());
    });
    return (server.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
