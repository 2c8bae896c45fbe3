/**
 * The Docker CLI for the tests that run the project's image: every call with
 * a time limit, failures with the command and its output, and a check that
 * says what to run when the engine or the local image is missing.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** The image the tests run; scripts/docker-engine.sh builds it. */
export const LOCAL_IMAGE = process.env.CDC_IMAGE ?? 'cdc-replicator:local';

export interface DockerResult {
  stdout: string;
  stderr: string;
  code: number;
}

/** Runs `docker ...args`; resolves with its output and exit code, whatever the code. */
export async function dockerTry(
  args: readonly string[],
  timeoutMs = 120_000,
): Promise<DockerResult> {
  try {
    const { stdout, stderr } = await run('docker', args, {
      timeout: timeoutMs,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr, code: 0 };
  } catch (error: unknown) {
    const e = error as { stdout?: string; stderr?: string; code?: unknown; message?: string };
    return {
      stdout: e.stdout ?? '',
      stderr: e.stderr ?? e.message ?? '',
      code: typeof e.code === 'number' ? e.code : -1,
    };
  }
}

/** Runs `docker ...args` and returns its stdout; throws with the command and output otherwise. */
export async function docker(args: readonly string[], timeoutMs = 120_000): Promise<string> {
  const result = await dockerTry(args, timeoutMs);
  if (result.code !== 0) {
    throw new Error(
      `docker ${args.join(' ')} exited ${result.code}:\n${result.stderr}${result.stdout}`,
    );
  }
  return result.stdout;
}

/**
 * Throws, naming the fix, unless a Docker engine answers and `image` exists.
 * CI runs scripts/docker-engine.sh before the tests, so there this never throws.
 */
export async function requireEngineAndImage(image = LOCAL_IMAGE): Promise<void> {
  const fix =
    'run scripts/docker-engine.sh (it installs and starts the engine and builds the image)';
  const info = await dockerTry(['info', '--format', '{{.ServerVersion}}'], 30_000);
  if (info.code !== 0) {
    throw new Error(`no Docker engine answers (docker info: ${info.stderr.trim()}); ${fix}`);
  }
  const inspect = await dockerTry(['image', 'inspect', '--format', '{{.Id}}', image], 30_000);
  if (inspect.code !== 0) throw new Error(`the image ${image} is not built; ${fix}`);
}

/** `docker inspect --format` of one container. */
export async function inspect(container: string, format: string): Promise<string> {
  return (await docker(['inspect', '--format', format, container])).trim();
}
