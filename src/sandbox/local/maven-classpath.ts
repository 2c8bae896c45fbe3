import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { EnvironmentError } from '../../core/errors.js';

const execFileAsync = promisify(execFile);
const DEPENDENCY_PLUGIN_VERSION = '3.8.1';

export interface MavenArtifact {
  readonly groupId: string;
  readonly artifactId: string;
  readonly version: string;
}

export interface MavenClasspathRequest {
  /** What the jars are, for messages (e.g. "Apache Kafka 3.9.1"). */
  readonly what: string;
  /** Name of the cache folder and of the generated pom's artifact; unique per artifact set. */
  readonly name: string;
  readonly dependencies: readonly MavenArtifact[];
  /** The `mvn` executable. */
  readonly mvn: string;
  readonly log: (message: string) => void;
}

/** Where resolved classpaths are cached between runs (`CDC_CACHE_DIR` overrides). */
export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return (
    env.CDC_CACHE_DIR ?? join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'cdc-replicator')
  );
}

function pom(request: MavenClasspathRequest): string {
  const dependencies = request.dependencies
    .map(
      (d) => `    <dependency>
      <groupId>${d.groupId}</groupId>
      <artifactId>${d.artifactId}</artifactId>
      <version>${d.version}</version>
    </dependency>`,
    )
    .join('\n');
  return `<?xml version="1.0" encoding="UTF-8"?>
<!-- Written by cdc-replicator: resolves the jars of ${request.what}. -->
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cdc-replicator</groupId>
  <artifactId>${request.name}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
${dependencies}
  </dependencies>
  <build>
    <pluginManagement>
      <plugins>
        <plugin>
          <groupId>org.apache.maven.plugins</groupId>
          <artifactId>maven-dependency-plugin</artifactId>
          <version>${DEPENDENCY_PLUGIN_VERSION}</version>
        </plugin>
      </plugins>
    </pluginManagement>
  </build>
</project>
`;
}

function classpathIsUsable(classpath: string): boolean {
  const jars = classpath.split(':').filter((jar) => jar.length > 0);
  return jars.length > 0 && jars.every((jar) => existsSync(jar));
}

/**
 * The Java classpath of a set of Maven artifacts and their dependencies. The
 * first call resolves it with Maven into the local repository (downloading
 * the jars once); later calls read the cached list and only re-resolve if a
 * jar has disappeared.
 */
export async function mavenClasspath(request: MavenClasspathRequest): Promise<string> {
  const dir = join(cacheDir(), request.name);
  const classpathFile = join(dir, 'classpath.txt');
  if (existsSync(classpathFile)) {
    const cached = readFileSync(classpathFile, 'utf8').trim();
    if (classpathIsUsable(cached)) return cached;
  }
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'pom.xml'), pom(request));
  request.log(`resolving ${request.what} jars with Maven (first run only)`);
  const tmpFile = `${classpathFile}.${process.pid}.tmp`;
  try {
    await execFileAsync(
      request.mvn,
      [
        '-B',
        '-q',
        '-f',
        join(dir, 'pom.xml'),
        'dependency:build-classpath',
        `-Dmdep.outputFile=${tmpFile}`,
      ],
      { maxBuffer: 16 * 1024 * 1024, timeout: 600_000 },
    );
  } catch (err) {
    const output = (err as { stdout?: string }).stdout ?? '';
    throw new EnvironmentError(
      `could not resolve ${request.what} from Maven Central with ${request.mvn}; ` +
        `check that Maven can reach its repository.\n${output.slice(-2000)}`,
      { cause: err, retriable: true },
    );
  }
  const classpath = readFileSync(tmpFile, 'utf8').trim();
  if (!classpathIsUsable(classpath)) {
    throw new EnvironmentError(
      `Maven produced an unusable classpath for ${request.what} in ${tmpFile}`,
    );
  }
  renameSync(tmpFile, classpathFile); // atomic: a concurrent reader sees all or nothing
  return classpath;
}
