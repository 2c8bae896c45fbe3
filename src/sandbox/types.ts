/**
 * Contracts of the local service launcher. Tests, the demo and the bench all
 * talk to services through these shapes, so whether the services run as local
 * processes or in containers is invisible to them.
 */

/**
 * The server a region runs. `mariadb` is the `mariadbd` on the machine;
 * `mysql8` is MySQL 8.0.12 from Maven Central (see `local/mysql8-dist.ts`).
 */
export type DatabaseEngine = 'mariadb' | 'mysql8';

/** A region of the sandbox: its name alone (a MariaDB region), or its name and engine. */
export type SandboxRegion = string | { readonly name: string; readonly engine: DatabaseEngine };

/** One region's MySQL-compatible server. */
export interface MySqlEndpoint {
  region: string;
  /** Which server this is: MariaDB or MySQL 8. */
  engine: DatabaseEngine;
  host: string;
  port: number;
  user: string;
  password: string;
  /** Unique per server; also what a binlog reader must not reuse. */
  serverId: number;
  /**
   * MariaDB GTID domain of this region (unique per region). MySQL 8 has no
   * GTID domains (its GTIDs are `server_uuid:N`): a MySQL 8 region still gets
   * a unique number here, which its server never sees, so callers written for
   * MariaDB keep compiling; check `engine` before relying on it.
   */
  gtidDomainId: number;
}

/** The client connection fields of an endpoint (mysql2 rejects unknown keys). */
export function connectionOptions(endpoint: MySqlEndpoint): {
  host: string;
  port: number;
  user: string;
  password: string;
} {
  return {
    host: endpoint.host,
    port: endpoint.port,
    user: endpoint.user,
    password: endpoint.password,
  };
}

export interface KafkaEndpoint {
  /** PLAINTEXT listener: no TLS, no authentication. */
  brokers: string[];
  /** SASL_SSL listener, present when {@link SandboxOptions.kafkaSecurity} asked for one. */
  secureBrokers?: string[];
}

/**
 * An extra SASL_SSL listener for the sandbox broker (TLS and SASL tests).
 * Every user may log in with PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512.
 */
export interface KafkaSecurityOptions {
  /** PEM server certificate (chain), e.g. for 127.0.0.1 and localhost. */
  certFile: string;
  /** Its unencrypted PEM private key in PKCS#8 form (`BEGIN PRIVATE KEY`). */
  keyFile: string;
  users: readonly { username: string; password: string }[];
}

export interface RedisEndpoint {
  url: string;
}

/** A service the launcher runs; stop/start keep its port and data. */
export interface SandboxService {
  readonly name: string;
  /** Starts the service and resolves once it answers requests. Idempotent. */
  start(): Promise<void>;
  /** Stops the service gracefully (SIGTERM, then SIGKILL past a deadline). Idempotent. */
  stop(): Promise<void>;
  /** Kills the service at once (SIGKILL), like a crash. */
  kill(): Promise<void>;
  /** Operating-system process ids currently running for this service. */
  pids(): number[];
}

export interface Sandbox {
  readonly mode: 'local' | 'docker';
  /** Scratch directory holding every service's data and logs. */
  readonly dir: string;
  readonly mysql: readonly MySqlEndpoint[];
  readonly kafka: KafkaEndpoint | undefined;
  readonly redis: RedisEndpoint | undefined;
  /** Handles to stop and restart single services (fault-injection tests). */
  readonly services: {
    readonly mysql: readonly SandboxService[];
    readonly kafka: SandboxService | undefined;
    readonly redis: SandboxService | undefined;
  };
  /** Every process id the launcher started that is still running. */
  pids(): number[];
  /** Stops everything and removes the scratch directory. Safe to call twice. */
  stop(): Promise<void>;
}

export interface SandboxOptions {
  /**
   * One server per region: a name alone is a MariaDB region, `{ name, engine: 'mysql8' }`
   * a MySQL 8 one. Default `['region-a', 'region-b']`.
   */
  regions?: readonly SandboxRegion[];
  /** Start Kafka. Default true. */
  kafka?: boolean;
  /** Start Redis. Default true. */
  redis?: boolean;
  /** `local` processes or `docker` containers; default from CDC_SANDBOX, else auto-detected. */
  mode?: 'local' | 'docker';
  /** Parent for the scratch directory; default the OS temp dir. */
  baseDir?: string;
  /** Also open a SASL_SSL listener (`kafka.secureBrokers`). Default none: PLAINTEXT only. */
  kafkaSecurity?: KafkaSecurityOptions;
  /** Maximum Kafka JVM heap. Default 512. */
  kafkaHeapMb?: number;
  /** InnoDB buffer pool per MariaDB or MySQL server. Default 128. */
  mysqlBufferPoolMb?: number;
  /** Keep the scratch directory after stop (for post-mortems). Default false. */
  keepDir?: boolean;
  /** Progress messages, e.g. `console.error`. Default silent. */
  log?: (message: string) => void;
}
