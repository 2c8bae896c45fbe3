import { ConfigError } from '../core/errors.js';
import { startDockerSandbox } from './docker/index.js';
import { IMAGE_KINDS, missingImages, probeDocker, resolveImages } from './docker/images.js';
import { startLocalSandbox } from './local/index.js';
import type { Sandbox, SandboxOptions } from './types.js';

export type * from './types.js';
export { connectionOptions } from './types.js';
export { requirePrograms, PROGRAMS } from './prerequisites.js';
export { IMAGE_DEFAULTS, resolveImages, type SandboxImages } from './docker/images.js';

/** The launcher chosen, and why (what the sandbox logs). */
export interface SandboxModeChoice {
  mode: 'local' | 'docker';
  reason: string;
}

/**
 * Chooses how to run services. `CDC_SANDBOX=local|docker` decides when set.
 * Otherwise containers, where a Docker engine answers and every image the
 * sandbox may run is on the machine (`CDC_IMAGE_*`, or the local builds of
 * scripts/docker-engine.sh); else local processes, whose error names what to
 * install when the programs are missing too.
 */
export function chooseSandboxMode(
  env: NodeJS.ProcessEnv = process.env,
  probe: () => ReturnType<typeof probeDocker> = probeDocker,
): SandboxModeChoice {
  const forced = env.CDC_SANDBOX;
  if (forced === 'local' || forced === 'docker')
    return { mode: forced, reason: `CDC_SANDBOX=${forced}` };
  if (forced !== undefined && forced !== '') {
    throw new ConfigError([`CDC_SANDBOX: "${forced}" is not one of local, docker`]);
  }
  const docker = probe();
  if (!docker.engine) return { mode: 'local', reason: `CDC_SANDBOX unset; ${docker.reason}` };
  const images = resolveImages(docker.present, env);
  const missing = missingImages(images, IMAGE_KINDS, docker.present);
  if (missing.length > 0) {
    return {
      mode: 'local',
      reason: `CDC_SANDBOX unset; a Docker engine answers but lacks ${missing.join(', ')} (scripts/docker-engine.sh builds them)`,
    };
  }
  return {
    mode: 'docker',
    reason: `CDC_SANDBOX unset; a Docker engine answers and has ${IMAGE_KINDS.map((k) => images[k]).join(', ')}`,
  };
}

/** {@link chooseSandboxMode}'s mode alone. */
export function selectSandboxMode(env: NodeJS.ProcessEnv = process.env): 'local' | 'docker' {
  return chooseSandboxMode(env).mode;
}

/**
 * Starts one MariaDB per region (or MySQL 8, for a region given as
 * `{ name, engine: 'mysql8' }`), a single-node Kafka and a Redis, each on a
 * free port, and resolves once every one of them answers: as local processes
 * or as containers with host networking (`mode`, else {@link chooseSandboxMode},
 * which the log reports). The tests, the demo and the bench all start their
 * services here. Call `stop()` when done; the launcher also cleans up on
 * process exit and on SIGINT/SIGTERM.
 */
export async function startSandbox(options: SandboxOptions = {}): Promise<Sandbox> {
  const choice: SandboxModeChoice =
    options.mode === undefined
      ? chooseSandboxMode()
      : { mode: options.mode, reason: 'asked for by the caller' };
  options.log?.(`sandbox mode: ${choice.mode} (${choice.reason})`);
  return choice.mode === 'docker' ? startDockerSandbox(options) : startLocalSandbox(options);
}
