import { execFileSync } from 'node:child_process';

/** The images the docker sandbox runs, one per kind of service. */
export interface SandboxImages {
  readonly mariadb: string;
  readonly mysql8: string;
  readonly kafka: string;
  readonly redis: string;
}

export type ImageKind = keyof SandboxImages;

/**
 * Per kind: the variable that names the image, the upstream default (for
 * machines with a registry), and the tag `scripts/docker-engine.sh` builds
 * locally from Debian packages and the local launcher's artifacts (for
 * machines without one; deploy/local-images).
 */
export const IMAGE_DEFAULTS: Readonly<
  Record<ImageKind, { variable: string; upstream: string; local: string }>
> = {
  mariadb: {
    variable: 'CDC_IMAGE_MARIADB',
    upstream: 'mariadb:10.11',
    local: 'cdc-local/mariadb:10.11',
  },
  mysql8: { variable: 'CDC_IMAGE_MYSQL8', upstream: 'mysql:8.0', local: 'cdc-local/mysql:8.0.12' },
  // Kafka 3.9: the newest line whose brokers still speak every protocol version kafkajs uses.
  kafka: {
    variable: 'CDC_IMAGE_KAFKA',
    upstream: 'apache/kafka:3.9.1',
    local: 'cdc-local/kafka:3.9.1',
  },
  redis: { variable: 'CDC_IMAGE_REDIS', upstream: 'redis:7', local: 'cdc-local/redis:7' },
};

const KINDS = Object.keys(IMAGE_DEFAULTS) as ImageKind[];

/**
 * The image of each kind: the variable's value when set; otherwise the
 * upstream image, unless only the local build is on the machine (what
 * `scripts/docker-engine.sh` leaves behind), then that.
 */
export function resolveImages(
  present: ReadonlySet<string>,
  env: NodeJS.ProcessEnv = process.env,
): SandboxImages {
  const pick = (kind: ImageKind): string => {
    const { variable, upstream, local } = IMAGE_DEFAULTS[kind];
    const forced = env[variable];
    if (forced !== undefined && forced !== '') return forced;
    return !present.has(upstream) && present.has(local) ? local : upstream;
  };
  return {
    mariadb: pick('mariadb'),
    mysql8: pick('mysql8'),
    kafka: pick('kafka'),
    redis: pick('redis'),
  };
}

/** `name:tag` as `docker image ls` prints it: a name without a tag is `:latest`. */
export function normaliseImageName(name: string): string {
  const lastSlash = name.lastIndexOf('/');
  return name.slice(lastSlash + 1).includes(':') ? name : `${name}:latest`;
}

export type DockerProbe =
  | { readonly engine: false; readonly reason: string }
  | { readonly engine: true; readonly present: ReadonlySet<string> };

/**
 * Whether a Docker engine answers (through the `docker` CLI, with a time
 * limit) and which tagged images it holds. Synchronous, for
 * `selectSandboxMode`.
 */
export function probeDocker(timeoutMs = 10_000): DockerProbe {
  try {
    const out = execFileSync('docker', ['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'], {
      encoding: 'utf8',
      timeout: timeoutMs,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return { engine: true, present: new Set(out.split('\n').filter((l) => l.length > 0)) };
  } catch (err) {
    const e = err as NodeJS.ErrnoException & { stderr?: string };
    const reason =
      e.code === 'ENOENT'
        ? 'no docker CLI on the PATH'
        : `no Docker engine answers (${(e.stderr ?? e.message).trim().split('\n')[0] ?? ''})`;
    return { engine: false, reason };
  }
}

/** The images of `kinds` that `present` lacks. */
export function missingImages(
  images: SandboxImages,
  kinds: readonly ImageKind[],
  present: ReadonlySet<string>,
): string[] {
  return kinds.map((kind) => images[kind]).filter((name) => !present.has(normaliseImageName(name)));
}

export { KINDS as IMAGE_KINDS };
