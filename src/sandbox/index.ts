import { ConfigError, EnvironmentError } from '../core/errors.js';
import { startLocalSandbox } from './local/index.js';
import type { Sandbox, SandboxOptions } from './types.js';

export type * from './types.js';
export { connectionOptions } from './types.js';
export { requirePrograms, PROGRAMS } from './prerequisites.js';

/**
 * Chooses how to run services. `CDC_SANDBOX=local|docker` decides when set.
 * Automatic selection picks local processes: container mode is not built yet,
 * and on a machine without the local programs the local launcher's error
 * (which names what to install) is the most useful answer.
 */
export function selectSandboxMode(env: NodeJS.ProcessEnv = process.env): 'local' | 'docker' {
  const forced = env.CDC_SANDBOX;
  if (forced === undefined || forced === '') return 'local';
  if (forced === 'local' || forced === 'docker') return forced;
  throw new ConfigError([`CDC_SANDBOX: "${forced}" is not one of local, docker`]);
}

/**
 * Starts one MariaDB per region (or MySQL 8, for a region given as
 * `{ name, engine: 'mysql8' }`), a single-node Kafka and a Redis, each on a
 * free port, and resolves once every one of them answers. The tests, the demo
 * and the bench all start their services here. Call `stop()` when done; the
 * launcher also kills everything on process exit and on SIGINT/SIGTERM.
 */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const mode = options.mode ?? selectSandboxMode();
  if (mode === 'docker') {
    throw new EnvironmentError(
      'CDC_SANDBOX=docker: container mode is not available in this version; ' +
        'unset CDC_SANDBOX or set CDC_SANDBOX=local (needs mariadbd, redis-server, java and mvn)',
      { code: 'SANDBOX_MODE_UNAVAILABLE' },
    );
  }
  return startLocalSandbox(options);
}
