/**
 * Prints where the local launcher keeps MySQL 8.0.12's server tree or
 * Kafka's classpath, fetching them with Maven first when missing, exactly as
 * the local launcher does (local/mysql8-dist.ts, local/kafka-jars.ts).
 * scripts/docker-engine.sh copies them into the build contexts of the local
 * MySQL 8 and Kafka images (deploy/local-images):
 *
 *   node dist/sandbox/docker/artifacts-cli.js mysql8   # the server tree's directory
 *   node dist/sandbox/docker/artifacts-cli.js kafka    # the classpath, ':'-separated
 */
import { kafkaClasspath } from '../local/kafka-jars.js';
import { mysql8Distribution } from '../local/mysql8-dist.js';
import { requirePrograms } from '../prerequisites.js';

const log = (message: string): void => void process.stderr.write(`${message}\n`);
const what = process.argv[2];
if (what === 'mysql8') {
  const programs = requirePrograms(['mvn', 'tar']);
  const { baseDir } = await mysql8Distribution({ mvn: programs.mvn, tar: programs.tar, log });
  process.stdout.write(`${baseDir}\n`);
} else if (what === 'kafka') {
  const programs = requirePrograms(['mvn']);
  process.stdout.write(`${await kafkaClasspath(programs.mvn, log)}\n`);
} else {
  log('usage: artifacts-cli.js mysql8|kafka');
  process.exitCode = 2;
}
