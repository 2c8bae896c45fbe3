import { ConnectBackoff, type ConnectTicket } from './connect-backoff.js';

const BROKER = '127.0.0.1:9092';

function setup(): { backoff: ConnectBackoff; clock: { now: number } } {
  const clock = { now: 0 };
  // random() = 1: no jitter, so the delays are exactly initialMs · 2^n up to maxMs.
  const backoff = new ConnectBackoff(
    { initialMs: 500, maxMs: 10_000 },
    () => clock.now,
    () => 1,
  );
  return { backoff, clock };
}

function go(ticket: ConnectTicket): ConnectTicket & { go: true } {
  if (!ticket.go) throw new Error(`held back for ${ticket.waitMs} ms`);
  return ticket;
}

describe('ConnectBackoff', () => {
  it('lets every connection through while the broker answers', () => {
    const { backoff } = setup();
    const tickets = [1, 2, 3].map(() => go(backoff.begin(BROKER)));
    for (const ticket of tickets) backoff.answered(ticket);
    expect(tickets.every((t) => !t.probe)).toBe(true);
  });

  it('after a failure lets one probe through per delay, doubling up to the cap', () => {
    const { backoff, clock } = setup();
    // A burst of failures of connections opened while the broker answered counts once.
    const burst = [1, 2, 3].map(() => go(backoff.begin(BROKER)));
    for (const ticket of burst) backoff.failed(ticket);
    const probes: number[] = [];
    for (clock.now = 0; clock.now <= 60_000; clock.now += 100) {
      const ticket = backoff.begin(BROKER);
      if (!ticket.go) continue;
      expect(ticket.probe).toBe(true);
      // Another client trying while the probe is in flight is held back.
      expect(backoff.begin(BROKER).go).toBe(false);
      probes.push(clock.now);
      backoff.failed(ticket);
    }
    const gaps = probes.slice(1).map((at, i) => at - (probes[i] as number));
    expect(probes[0]).toBe(500);
    expect(gaps).toEqual([1000, 2000, 4000, 8000, 10_000, 10_000, 10_000, 10_000]);
  });

  it('a probe that gets an answer lifts the limit at once', () => {
    const { backoff, clock } = setup();
    backoff.failed(go(backoff.begin(BROKER)));
    clock.now = 500;
    backoff.answered(go(backoff.begin(BROKER)));
    expect(backoff.begin(BROKER)).toEqual({ go: true, broker: BROKER, probe: false });
    expect(backoff.begin('127.0.0.1:9093')).toEqual({
      go: true,
      broker: '127.0.0.1:9093',
      probe: false,
    });
  });

  it('says how long a held-back attempt would wait', () => {
    const { backoff, clock } = setup();
    backoff.failed(go(backoff.begin(BROKER)));
    clock.now = 200;
    expect(backoff.begin(BROKER)).toEqual({ go: false, waitMs: 300 });
  });
});
