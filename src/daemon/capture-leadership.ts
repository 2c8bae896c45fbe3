import { performance } from 'node:perf_hooks';
import {
  CAPTURE_CHECKPOINT_KEY,
  CaptureStage,
  type CaptureState,
  type CaptureStageDeps,
} from '../capture/capture-stage.js';
import type { CdcError } from '../core/errors.js';
import { classifyError } from '../core/retriable.js';
import {
  LEASE_LOST,
  LeaseTerm,
  RedisLease,
  leaseTiming,
  type LeaseTiming,
} from '../state/lease.js';
import { STATE_ERROR_CODES } from '../state/store.js';

/** What this daemon does about capture right now. */
export type CaptureRole = 'single' | 'leader' | 'standby';

/** Name of the capture lease in the region's key namespace. */
export const CAPTURE_LEASE_NAME = 'capture';

/** How long `start` waits for Redis before the first attempt (a standby then keeps trying). */
const LEASE_CONNECT_WAIT_MS = 5_000;

function now(): number {
  return performance.now();
}

/**
 * Runs the region's capture stage under a Redis lease, so that of several
 * daemons serving one region exactly one captures (DESIGN §6).
 *
 * - With a Redis checkpoint store: the daemon campaigns for the lease. The
 *   holder runs a {@link CaptureStage} whose checkpoint saves carry the
 *   lease's fencing token and whose publishing stops the moment the lease's
 *   term lapses on the local monotonic clock. Renewals run every
 *   `renewIntervalMs`; a renewal that finds another owner, a term that lapses
 *   without a successful renewal, or a save refused as `FENCED` all end the
 *   term: capture is aborted (nothing more sent or saved) and the daemon
 *   goes back to standby. A standby retries when the holder's key is due to
 *   expire, so it takes over within the TTL of the holder's death.
 * - With the file store there is no lease: capture simply runs (role
 *   `single`), and a second daemon for the region would capture too.
 *
 * A standby is doing its job, so it counts as running for readiness.
 */
export class CaptureLeadership {
  readonly #deps: Omit<CaptureStageDeps, 'fence'>;
  readonly #timing: LeaseTiming | undefined;
  #role: CaptureRole | undefined;
  #lease: RedisLease | undefined;
  #term: LeaseTerm | undefined;
  #capture: CaptureStage | undefined;
  #started = false;
  #stopping = false;
  #stopped: Promise<void> | undefined;
  #loop: Promise<void> | undefined;
  #wake: (() => void) | undefined;
  #failedWith: CdcError | undefined;
  #fatal: ((error: CdcError) => void) | undefined;
  #lastHolder: string | undefined;
  #leaseTrouble = false;
  /** Resolves with the error that stopped capture for good (not a lost lease: that means standby). */
  readonly failed: Promise<CdcError>;

  constructor(deps: Omit<CaptureStageDeps, 'fence'>) {
    this.#deps = deps;
    const { checkpointStore, capture } = deps.options;
    this.#timing =
      checkpointStore.kind === 'redis'
        ? leaseTiming(capture.lease.ttlMs, capture.lease.renewIntervalMs)
        : undefined;
    this.failed = new Promise((resolve) => (this.#fatal = resolve));
  }

  /** `single` without Redis; otherwise whether this daemon holds the lease. Undefined before start. */
  get role(): CaptureRole | undefined {
    return this.#role;
  }

  /** The capture stage while this daemon captures; undefined on a standby. */
  get stage(): CaptureStage | undefined {
    return this.#capture;
  }

  /** The fencing token of the current term, when leading. */
  get token(): number | undefined {
    return this.#term?.token;
  }

  /** In CaptureStage's terms, for readiness: a standby is `running`. */
  get state(): CaptureState {
    if (this.#failedWith !== undefined) return 'failed';
    if (this.#stopping) return this.#capture?.state === 'draining' ? 'draining' : 'stopped';
    if (!this.#started) return this.#role === undefined ? 'idle' : 'starting';
    if (this.#capture !== undefined)
      return this.#capture.state === 'idle' ? 'starting' : this.#capture.state;
    return 'running';
  }

  /**
   * Without a lease: starts capture and resolves once it streams. With one:
   * makes one attempt to take the lease; when it is free, resolves once
   * capture streams (as a lone daemon would), otherwise as a standby. Start
   * failures of a capture begun here reject, as CaptureStage.start does.
   */
  async start(): Promise<void> {
    if (this.#role !== undefined) throw new Error('capture leadership started twice');
    const { options, logger, metrics } = this.#deps;
    const region = options.region;
    const store = options.checkpointStore;
    if (store.kind !== 'redis' || this.#timing === undefined) {
      this.#role = 'single';
      logger.info(
        { checkpointStore: 'file' },
        'no redis block: capture runs without a lease; run a single daemon per region (a second one would capture too)',
      );
      metrics.captureLeader.set({ region }, 1);
      const capture = new CaptureStage(this.#deps);
      this.#capture = capture;
      void capture.failed.then((error) => this.#fail(error));
      await capture.start();
      this.#started = true;
      return;
    }
    this.#role = 'standby';
    metrics.captureLeader.set({ region }, 0);
    this.#lease = await RedisLease.open(
      {
        url: store.url,
        keyPrefix: store.keyPrefix,
        tls: store.tls,
        name: CAPTURE_LEASE_NAME,
        fencedCheckpointKey: CAPTURE_CHECKPOINT_KEY,
        timing: this.#timing,
        logger,
      },
      LEASE_CONNECT_WAIT_MS,
    );
    logger.info(
      { lease: this.#lease.description, owner: this.#lease.owner, ...this.#timing },
      'capture runs under a lease: one daemon of the region captures, the others stand by',
    );
    const attempt = await this.#attempt();
    // Renewals run while capture starts: a start that waits for Kafka may outlast the TTL.
    this.#loop = this.#run();
    try {
      await attempt?.started;
    } catch (err) {
      this.#stopping = true;
      const term = this.#term;
      this.#term = undefined;
      this.#capture = undefined;
      this.#wakeUp();
      await this.#loop;
      if (term !== undefined) await this.#lease.release(term.token).catch(() => false);
      await this.#lease.close();
      throw err;
    }
    this.#started = true;
  }

  /**
   * Graceful stop: a leader drains capture (renewing meanwhile, so its last
   * checkpoint save still carries a valid token), then releases the lease so
   * a standby takes over at once instead of after the TTL.
   */
  stop(): Promise<void> {
    this.#stopped ??= this.#stop();
    return this.#stopped;
  }

  async #stop(): Promise<void> {
    this.#stopping = true;
    this.#wakeUp();
    try {
      await this.#capture?.stop();
    } catch (err) {
      // A term that lapsed while draining (Redis restarted, or a pause) only means the
      // last checkpoint was not saved: the next holder replays from the previous one.
      const error = classifyError(err, 'draining capture');
      if (error.code !== LEASE_LOST && error.code !== STATE_ERROR_CODES.fenced) throw error;
      this.#deps.logger.warn(
        { err: error.message },
        'capture lease lapsed while draining; the next holder replays from the last saved position',
      );
    } finally {
      const term = this.#term;
      this.#term = undefined;
      this.#capture = undefined;
      this.#wakeUp();
      await this.#loop;
      if (term !== undefined && this.#lease !== undefined) {
        const released = await this.#lease.release(term.token).catch((err: unknown) => {
          this.#deps.logger.warn(
            { err: classifyError(err, 'releasing the capture lease').message },
            'could not release the capture lease; a standby takes over once it expires',
          );
          return false;
        });
        if (released) this.#deps.logger.info({ fenceToken: term.token }, 'capture lease released');
      }
      if (this.#role !== 'single')
        this.#deps.metrics.captureLeader.set({ region: this.#region }, 0);
      await this.#lease?.close();
    }
  }

  get #region(): string {
    return this.#deps.options.region;
  }

  /**
   * One try at the lease. When taken, starts capture and returns its start
   * (wrapped, so it is not awaited here: renewals must not wait for a slow start).
   */
  async #attempt(): Promise<{ started: Promise<void> } | undefined> {
    const lease = this.#lease as RedisLease;
    const timing = this.#timing as LeaseTiming;
    const sentAt = now();
    let result;
    try {
      result = await lease.tryAcquire();
    } catch (err) {
      const error = classifyError(err, 'taking the capture lease');
      if (!this.#leaseTrouble) {
        this.#deps.logger.warn(
          { err: error.message },
          'cannot reach redis for the capture lease; standing by and retrying',
        );
      }
      this.#leaseTrouble = true;
      return undefined;
    }
    this.#leaseTrouble = false;
    if (!result.acquired) {
      if (this.#lastHolder !== result.holder) {
        this.#deps.logger.info(
          { holder: result.holder, expiresInMs: result.remainingMs },
          'capture lease held by another daemon; standing by',
        );
        this.#lastHolder = result.holder;
      }
      this.#nextAttemptInMs = Math.min(timing.renewIntervalMs, result.remainingMs + 10);
      return undefined;
    }
    this.#lastHolder = undefined;
    return { started: this.#lead(new LeaseTerm(result.token, timing.ttlMs, sentAt)) };
  }

  #nextAttemptInMs = 0;

  #lead(term: LeaseTerm): Promise<void> {
    const { logger, metrics } = this.#deps;
    this.#term = term;
    this.#role = 'leader';
    metrics.captureLeader.set({ region: this.#region }, 1);
    logger.info({ fenceToken: term.token, owner: this.#lease?.owner }, 'capture lease acquired');
    const capture = new CaptureStage({
      ...this.#deps,
      fence: { token: term.token, held: () => this.#term === term && term.isHeld(now()) },
    });
    this.#capture = capture;
    void capture.failed.then((error) => this.#onCaptureFailed(capture, term, error));
    return capture.start();
  }

  #onCaptureFailed(capture: CaptureStage, term: LeaseTerm, error: CdcError): void {
    if (this.#capture !== capture || this.#stopping) return; // an earlier term, or stopping anyway
    if (error.code === STATE_ERROR_CODES.fenced || error.code === LEASE_LOST) {
      void this.#lose(term, error.message);
      return;
    }
    this.#fail(error);
  }

  /** Ends a term: capture stops sending at once, the lease is given back if still ours, standby follows. */
  async #lose(term: LeaseTerm, reason: string): Promise<void> {
    if (this.#term !== term) return;
    const { logger, metrics } = this.#deps;
    this.#term = undefined;
    this.#role = 'standby';
    metrics.captureLeader.set({ region: this.#region }, 0);
    logger.warn(
      { fenceToken: term.token, reason },
      'capture lease lost; capture stopped, standing by',
    );
    const capture = this.#capture;
    this.#capture = undefined;
    try {
      await capture?.abort();
    } catch (err) {
      logger.debug(
        { err: classifyError(err, 'aborting capture').message },
        'capture abort reported',
      );
    }
    await this.#lease?.release(term.token).catch(() => false);
    this.#wakeUp();
  }

  /** Renews while leading, campaigns while standing by, until stopped. */
  async #run(): Promise<void> {
    const timing = this.#timing as LeaseTiming;
    for (;;) {
      const term = this.#term;
      if (term !== undefined) {
        await this.#sleep(Math.min(timing.renewIntervalMs, term.remainingMs(now())));
        if (this.#term !== term) continue;
        await this.#renew(term);
        continue;
      }
      if (this.#stopping || this.#failedWith !== undefined) return;
      this.#nextAttemptInMs = timing.renewIntervalMs;
      const attempt = await this.#attempt();
      if (attempt !== undefined && this.#term !== undefined) {
        const capture = this.#capture;
        const leading = this.#term;
        attempt.started.catch((err: unknown) => {
          if (capture !== undefined)
            this.#onCaptureFailed(capture, leading, classifyError(err, 'starting capture'));
        });
        continue;
      }
      await this.#sleep(this.#nextAttemptInMs);
    }
  }

  async #renew(term: LeaseTerm): Promise<void> {
    if (!term.isHeld(now())) {
      await this.#lose(term, `not renewed within the ${term.ttlMs} ms TTL`);
      return;
    }
    const sentAt = now();
    try {
      const result = await (this.#lease as RedisLease).renew(term.token);
      if (result.renewed) {
        term.renewed(sentAt);
        if (this.#leaseTrouble) this.#deps.logger.info('capture lease renewed again');
        this.#leaseTrouble = false;
      } else {
        await this.#lose(term, `taken over by ${result.holder}`);
      }
    } catch (err) {
      this.#leaseTrouble = true;
      this.#deps.logger.warn(
        {
          err: classifyError(err, 'renewing the capture lease').message,
          remainingMs: Math.round(term.remainingMs(now())),
        },
        'capture lease renewal failed; retrying until the term lapses',
      );
    }
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        if (this.#wake === done) this.#wake = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, ms));
      this.#wake = done;
    });
  }

  #wakeUp(): void {
    this.#wake?.();
  }

  #fail(error: CdcError): void {
    if (this.#failedWith !== undefined) return;
    this.#failedWith = error;
    // Capture is dead: hand the lease over now rather than renew it for a
    // daemon that only waits to be stopped.
    const term = this.#term;
    this.#term = undefined;
    if (term !== undefined) {
      this.#deps.metrics.captureLeader.set({ region: this.#region }, 0);
      void this.#lease?.release(term.token).catch(() => false);
    }
    this.#wakeUp();
    this.#fatal?.(error);
  }
}
