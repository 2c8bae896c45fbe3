import { mkdir, open, readdir, readFile, rename, unlink, type FileHandle } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';

import { CdcError } from '../core/errors.js';
import { silentLogger, type Logger } from '../core/logger.js';
import {
  assertValidFence,
  assertValidKey,
  checkedCheckpoint,
  closedError,
  decodeCheckpoint,
  fencedError,
  isFencedOut,
  namespacedKey,
  normalizeKeyPrefix,
} from './checkpoint-codec.js';
import { errorMessage } from './error-text.js';
import { KeyedMutex } from './keyed-mutex.js';
import {
  STATE_ERROR_CODES,
  type Checkpoint,
  type CheckpointStore,
  type FenceToken,
} from './store.js';

/** Options of {@link FileCheckpointStore.open}. */
export interface FileCheckpointStoreOptions {
  /** Directory holding one JSON file per key; created if missing. */
  readonly dir: string;
  /** Namespace for keys (`<prefix>:<key>`); a trailing `:` is ignored. Default: none. */
  readonly keyPrefix?: string;
  readonly logger?: Logger;
}

/** Version of the on-disk layout, so a later change can be told apart from corruption. */
const FILE_FORMAT = 1;

/** What one checkpoint file holds. The full key makes a file self-describing when an operator reads it. */
interface CheckpointFile {
  readonly format: typeof FILE_FORMAT;
  readonly key: string;
  readonly checkpoint: Checkpoint;
  /** Highest fencing token accepted for this key, if any writer ever used one. */
  readonly fence?: FenceToken;
}

const SAFE_FILE_NAME_BYTE = /^[A-Za-z0-9._-]$/;
const FILE_SUFFIX = '.json';
/** Temp files are `<file>.tmp-<pid>-<seq>`; the pid tells whether a leftover's writer is gone. */
const TEMP_FILE = /\.json\.tmp-(\d+)-\d+$/;
/** Leaves room for the temp suffix within the usual 255-byte file-name limit. */
const MAX_ENCODED_KEY_LENGTH = 200;

/**
 * Fatal file-system conditions are the norm (permissions, read-only mounts);
 * these few clear up without anyone changing the configuration.
 */
const TRANSIENT_FS_CODES: ReadonlySet<string> = new Set([
  'EAGAIN',
  'EBUSY',
  'EDQUOT',
  'EINTR',
  'EMFILE',
  'ENFILE',
  'ENOSPC',
]);

/**
 * The file name for a namespaced key: bytes outside `[A-Za-z0-9._-]` (of the
 * key's UTF-8 form) become `%XX`, so no key can climb out of the directory
 * (`../x`), and different keys never share a file (`%` itself is encoded).
 */
export function checkpointFileName(namespacedKeyValue: string): string {
  let encoded = '';
  for (const byte of Buffer.from(namespacedKeyValue, 'utf8')) {
    const char = String.fromCharCode(byte);
    encoded += SAFE_FILE_NAME_BYTE.test(char)
      ? char
      : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return `${encoded}${FILE_SUFFIX}`;
}

function errnoCode(err: unknown): string | undefined {
  if (typeof err !== 'object' || err === null) return undefined;
  const code = (err as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/**
 * The embedded checkpoint store for a single node: one JSON file per key
 * under a directory.
 *
 * A save writes a temp file, fsyncs it, renames it over the old file and
 * fsyncs the directory, so after a crash (of the process or the machine) the
 * file holds either the old or the new checkpoint, never a mix, and a resolved
 * save is on disk. Leftover temp files from a crash are never read; the next
 * open deletes those whose writing process is gone.
 *
 * Fencing tokens are persisted in the checkpoint file and checked under an
 * in-process mutex per key. Node has no portable file locks, so this makes
 * the check atomic within one process only: two daemons sharing a directory
 * is outside what this store is for (use Redis for HA).
 */
export class FileCheckpointStore implements CheckpointStore {
  readonly #dir: string;
  readonly #prefix: string;
  readonly #logger: Logger;
  readonly #where: string;
  readonly #mutex = new KeyedMutex();
  readonly #inflight = new Set<Promise<unknown>>();
  #tempSeq = 0;
  #closing: Promise<void> | undefined;

  private constructor(dir: string, prefix: string, logger: Logger) {
    this.#dir = dir;
    this.#prefix = prefix;
    this.#logger = logger;
    this.#where = `file checkpoint store ${dir}`;
  }

  /**
   * Creates the directory if needed (durably) and removes temp files left by
   * crashed writers.
   *
   * @throws CdcError `STATE_IO` when the directory cannot be created or read.
   */
  static async open(options: FileCheckpointStoreOptions): Promise<FileCheckpointStore> {
    const dir = resolve(options.dir);
    const store = new FileCheckpointStore(
      dir,
      normalizeKeyPrefix(options.keyPrefix),
      options.logger ?? silentLogger(),
    );
    await store.#createDir();
    await store.#removeStaleTempFiles();
    return store;
  }

  /** The file a key is stored in (for operators and tests). */
  pathFor(key: string): string {
    return this.#pathForNamespaced(namespacedKey(this.#prefix, key));
  }

  load(key: string): Promise<Checkpoint | undefined> {
    return this.#track('load', async () => {
      assertValidKey(this.#where, key);
      const fullKey = namespacedKey(this.#prefix, key);
      // No mutex: rename replaces the file atomically, so a read sees one whole version.
      const stored = await this.#read(this.#pathForNamespaced(fullKey), fullKey);
      return stored?.checkpoint;
    });
  }

  save(key: string, checkpoint: Checkpoint, fence?: FenceToken): Promise<void> {
    return this.#track('save', async () => {
      assertValidKey(this.#where, key);
      assertValidFence(this.#where, fence);
      const value = checkedCheckpoint(this.#where, checkpoint);
      const fullKey = namespacedKey(this.#prefix, key);
      const file = this.#pathForNamespaced(fullKey);
      await this.#mutex.run(file, async () => {
        const current = await this.#read(file, fullKey);
        const recorded = current?.fence;
        if (recorded !== undefined && isFencedOut(recorded, fence)) {
          throw fencedError(this.#where, fullKey, fence, recorded);
        }
        const next: CheckpointFile = {
          format: FILE_FORMAT,
          key: fullKey,
          checkpoint: value,
          ...(fence === undefined ? {} : { fence }),
        };
        await this.#writeDurably(file, `${JSON.stringify(next, null, 2)}\n`);
      });
    });
  }

  close(): Promise<void> {
    this.#closing ??= Promise.allSettled([...this.#inflight]).then(() => undefined);
    return this.#closing;
  }

  #track<T>(operation: string, task: () => Promise<T>): Promise<T> {
    if (this.#closing !== undefined) return Promise.reject(closedError(this.#where, operation));
    const promise = task();
    this.#inflight.add(promise);
    const forget = (): void => {
      this.#inflight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }

  #pathForNamespaced(fullKey: string): string {
    const name = checkpointFileName(fullKey);
    if (name.length - FILE_SUFFIX.length > MAX_ENCODED_KEY_LENGTH) {
      throw new CdcError(
        `${this.#where}: checkpoint key ${JSON.stringify(fullKey)} is too long for a file name`,
        { retriable: false, code: STATE_ERROR_CODES.invalidArgument },
      );
    }
    return join(this.#dir, name);
  }

  #ioError(action: string, path: string, err: unknown): CdcError {
    const code = errnoCode(err);
    return new CdcError(`${this.#where}: cannot ${action} ${path}: ${errorMessage(err)}`, {
      retriable: code !== undefined && TRANSIENT_FS_CODES.has(code),
      code: STATE_ERROR_CODES.io,
      cause: err,
    });
  }

  #corrupt(file: string, problem: string, cause?: unknown): CdcError {
    return new CdcError(
      `${this.#where}: checkpoint file ${file} is corrupt (${problem}); ` +
        'repair or remove it: the store will not guess a position',
      { retriable: false, code: STATE_ERROR_CODES.corrupt, cause },
    );
  }

  async #read(file: string, fullKey: string): Promise<CheckpointFile | undefined> {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return undefined;
      throw this.#ioError('read', file, err);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (err) {
      throw this.#corrupt(file, text.length === 0 ? 'empty file' : 'not valid JSON', err);
    }
    const decoded = decodeCheckpointFile(parsed, fullKey);
    if ('problem' in decoded) throw this.#corrupt(file, decoded.problem);
    return decoded;
  }

  async #writeDurably(file: string, contents: string): Promise<void> {
    this.#tempSeq += 1;
    const temp = `${file}.tmp-${process.pid}-${this.#tempSeq}`;
    let handle: FileHandle | undefined;
    try {
      // 'wx': never follow or reuse an existing file, whatever left it there.
      handle = await open(temp, 'wx', 0o644);
      await handle.writeFile(contents, 'utf8');
      await handle.sync();
      await handle.close();
      handle = undefined;
      await rename(temp, file);
    } catch (err) {
      await handle?.close().catch((closeErr: unknown) => this.#logCleanupFailure(temp, closeErr));
      await unlink(temp).catch((unlinkErr: unknown) => {
        if (errnoCode(unlinkErr) !== 'ENOENT') this.#logCleanupFailure(temp, unlinkErr);
      });
      throw this.#ioError('write', file, err);
    }
    // The rename is only durable once the directory entry is on disk.
    await this.#syncDir(this.#dir);
  }

  #logCleanupFailure(path: string, err: unknown): void {
    this.#logger.warn(
      { path, err: errorMessage(err) },
      'could not clean up a checkpoint temp file',
    );
  }

  async #syncDir(dir: string): Promise<void> {
    // Windows cannot open a directory for fsync; NTFS journals the rename itself.
    if (process.platform === 'win32') return;
    let handle: FileHandle | undefined;
    try {
      handle = await open(dir, 'r');
      await handle.sync();
    } catch (err) {
      throw this.#ioError('fsync directory', dir, err);
    } finally {
      await handle?.close();
    }
  }

  async #createDir(): Promise<void> {
    let created: string | undefined;
    try {
      created = await mkdir(this.#dir, { recursive: true });
    } catch (err) {
      throw this.#ioError('create directory', this.#dir, err);
    }
    if (created === undefined) return;
    // Every directory mkdir just made needs its parent's entry synced, or a
    // machine crash could lose the whole state directory with its files.
    const top = dirname(created);
    for (let dir = this.#dir; dir !== top && dirname(dir) !== dir; dir = dirname(dir)) {
      await this.#syncDir(dirname(dir));
    }
  }

  async #removeStaleTempFiles(): Promise<void> {
    let names: string[];
    try {
      names = await readdir(this.#dir);
    } catch (err) {
      throw this.#ioError('list directory', this.#dir, err);
    }
    for (const name of names) {
      const pid = Number(TEMP_FILE.exec(name)?.[1] ?? Number.NaN);
      if (!Number.isSafeInteger(pid) || pid === process.pid || isProcessAlive(pid)) continue;
      const path = join(this.#dir, name);
      try {
        await unlink(path);
        this.#logger.info({ path }, 'removed a checkpoint temp file left by a crashed save');
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') this.#logCleanupFailure(path, err);
      }
    }
  }
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: the process exists but belongs to someone else.
    return errnoCode(err) === 'EPERM';
  }
}

function decodeCheckpointFile(
  value: unknown,
  fullKey: string,
): CheckpointFile | { problem: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: 'not a JSON object' };
  }
  const record = value as Record<string, unknown>;
  if (record.format !== FILE_FORMAT) {
    return { problem: `unknown format ${JSON.stringify(record.format)}` };
  }
  if (record.key !== fullKey) {
    return {
      problem: `holds key ${JSON.stringify(record.key)} instead of ${JSON.stringify(fullKey)}`,
    };
  }
  const { fence } = record;
  if (fence !== undefined && !(Number.isSafeInteger(fence) && (fence as number) >= 0)) {
    return { problem: 'fence is not a non-negative integer' };
  }
  const checkpoint = decodeCheckpoint(record.checkpoint);
  if ('problem' in checkpoint) return checkpoint;
  return {
    format: FILE_FORMAT,
    key: fullKey,
    checkpoint,
    ...(fence === undefined ? {} : { fence: fence as number }),
  };
}
