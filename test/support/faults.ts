import { readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Sandbox } from '../../src/sandbox/index.js';

/**
 * Redis killed (-9) and restarted with nothing on disk, as one without
 * persistence comes back: every key is gone. The sandbox's Redis keeps an
 * append-only file, so its files are removed while the server is down.
 */
export async function loseRedis(sandbox: Sandbox): Promise<void> {
  const redis = sandbox.services.redis;
  if (redis === undefined) throw new Error('the sandbox runs no Redis');
  await redis.kill();
  const dir = join(sandbox.dir, 'redis');
  for (const entry of readdirSync(dir))
    if (entry !== 'redis.log') rmSync(join(dir, entry), { recursive: true, force: true });
  await redis.start();
}
