import { join } from 'node:path';
import { EnvironmentError } from '../../core/errors.js';
import type { ManagedProcess } from '../processes.js';
import { probeSql } from '../probes.js';
import type { MySqlEndpoint } from '../types.js';
import { tailOf, waitUntilReady } from '../wait.js';

/**
 * Waits until a MariaDB or MySQL server the launcher started answers a query
 * on its endpoint; a failure carries the tail of the server's `error.log`
 * in `dir`, where both servers say why they would not start.
 */
export async function waitForSqlServer(
  name: string,
  process: ManagedProcess,
  endpoint: MySqlEndpoint,
  dir: string,
  timeoutMs: number,
): Promise<void> {
  await waitUntilReady(name, process, () => probeSql(endpoint), timeoutMs).catch((err: unknown) => {
    throw new EnvironmentError(
      `${err instanceof Error ? err.message : String(err)}\nerror log:\n${tailOf(join(dir, 'error.log'))}`,
      { cause: err },
    );
  });
}
