/** Delays of {@link ConnectBackoff}: doubling from `initialMs` up to `maxMs`, each up to 20 % shorter at random. */
export interface ConnectBackoffSettings {
  initialMs: number;
  maxMs: number;
}

/** What {@link ConnectBackoff.begin} decided for one connection attempt. */
export type ConnectTicket =
  | { readonly go: true; readonly broker: string; readonly probe: boolean }
  | { readonly go: false; readonly waitMs: number };

interface BrokerState {
  /** Consecutive failed probes since the broker last answered; 0 while it answers. */
  failures: number;
  /** No probe before this time (ms). */
  notBeforeMs: number;
  /** A probe is in flight: the others wait for its outcome. */
  probing: boolean;
}

/**
 * Paces TCP connections to brokers that stopped answering, shared by every
 * kafkajs client of one daemon. kafkajs retries per client and per layer
 * (producer send, metadata refresh, seed broker connect, consumer restart),
 * each retrier starting over at its initial delay, so a dead broker saw about
 * a hundred connection attempts in 30 s from a single daemon. Here a broker
 * that answers is connected to freely; once a connection to it closed
 * without a byte received, one probe at a time is let through, each after
 * a delay that doubles up to `maxMs`, and every other attempt fails at once
 * without touching the network. The first answer from the broker lifts the
 * limit, so recovery waits at most one delay (≤ `maxMs`) after the broker is
 * back, plus the kafkajs retry delay of the client.
 */
export class ConnectBackoff {
  readonly #brokers = new Map<string, BrokerState>();

  constructor(
    private readonly settings: ConnectBackoffSettings,
    private readonly nowMs: () => number = Date.now,
    private readonly random: () => number = Math.random,
  ) {}

  /** Whether a connection to `broker` may be opened now (as a probe when the broker is failing). */
  begin(broker: string): ConnectTicket {
    const state = this.#brokers.get(broker);
    if (state === undefined || state.failures === 0) return { go: true, broker, probe: false };
    const now = this.nowMs();
    if (state.probing || now < state.notBeforeMs)
      return { go: false, waitMs: Math.max(0, state.notBeforeMs - now) };
    state.probing = true;
    return { go: true, broker, probe: true };
  }

  /** The broker sent data on a connection: it answers; no more pacing. */
  answered(ticket: ConnectTicket): void {
    if (ticket.go) this.#brokers.delete(ticket.broker);
  }

  /** A connection closed before the broker sent anything: refused, reset, timed out or dropped. */
  failed(ticket: ConnectTicket): void {
    if (!ticket.go) return;
    const state = this.#brokers.get(ticket.broker);
    if (state === undefined || state.failures === 0) {
      // The first failure of a broker that answered: the others of the same burst add nothing.
      this.#brokers.set(ticket.broker, {
        failures: 1,
        notBeforeMs: this.nowMs() + this.#delayMs(1),
        probing: false,
      });
    } else if (ticket.probe) {
      state.failures += 1;
      state.probing = false;
      state.notBeforeMs = this.nowMs() + this.#delayMs(state.failures);
    }
  }

  #delayMs(failures: number): number {
    const { initialMs, maxMs } = this.settings;
    const base = Math.min(initialMs * 2 ** Math.min(failures - 1, 30), maxMs);
    // Jitter only shortens, so `maxMs` stays the cap; it spreads daemons that lost the broker together.
    return Math.round(base * (0.8 + 0.2 * this.random()));
  }
}
