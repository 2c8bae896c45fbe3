import { describe, expect, it } from '@jest/globals';
import fc from 'fast-check';

import { CdcError } from '../core/errors.js';
import {
  LeaseTerm,
  decodeAcquireReply,
  decodeRenewReply,
  defaultLeaseOwner,
  leaseTiming,
} from './lease.js';

describe('leaseTiming', () => {
  it('renews every third of the TTL by default', () => {
    expect(leaseTiming(10_000)).toEqual({ ttlMs: 10_000, renewIntervalMs: 3_333 });
  });

  it('keeps an explicit renewal period', () => {
    expect(leaseTiming(3_000, 1_000)).toEqual({ ttlMs: 3_000, renewIntervalMs: 1_000 });
  });

  it.each([
    [100, undefined],
    [10_000, 6_000],
    [10_000, 0],
    [10_000.5, undefined],
  ])('refuses ttl %p with renewal %p', (ttl, renew) => {
    expect(() => leaseTiming(ttl, renew)).toThrow(CdcError);
  });
});

describe('LeaseTerm', () => {
  it('is held until a TTL after the acquisition was sent', () => {
    const term = new LeaseTerm(7, 3_000, 1_000);
    expect(term.isHeld(3_999)).toBe(true);
    expect(term.isHeld(4_000)).toBe(false);
    expect(term.remainingMs(3_500)).toBe(500);
    expect(term.remainingMs(9_000)).toBe(0);
  });

  it('a renewal extends from when it was sent, and a late reply to an older renewal never shortens it', () => {
    const term = new LeaseTerm(1, 3_000, 0);
    term.renewed(2_000);
    expect(term.isHeld(4_999)).toBe(true);
    term.renewed(1_000); // reply of an earlier request arriving last
    expect(term.isHeld(4_999)).toBe(true);
    expect(term.isHeld(5_000)).toBe(false);
  });

  it('never outlives the key in Redis, whose TTL starts when the request arrives', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 500, max: 60_000 }),
        fc.array(fc.record({ sentAt: fc.nat(1_000_000), latency: fc.nat(5_000) }), {
          minLength: 1,
          maxLength: 20,
        }),
        (ttl, requests) => {
          const [first, ...rest] = requests;
          if (first === undefined) return;
          const term = new LeaseTerm(1, ttl, first.sentAt);
          // Redis expiry: arrival of the newest-arriving successful request plus TTL.
          let redisExpiry = first.sentAt + first.latency + ttl;
          for (const r of rest) {
            term.renewed(r.sentAt);
            redisExpiry = Math.max(redisExpiry, r.sentAt + r.latency + ttl);
          }
          expect(term.isHeld(redisExpiry)).toBe(false);
        },
      ),
    );
  });
});

describe('lease script replies', () => {
  it('decodes an acquisition with its token', () => {
    expect(decodeAcquireReply([1, 42])).toEqual({ acquired: true, token: 42 });
  });

  it('decodes a refusal with the holder and its remaining TTL', () => {
    expect(decodeAcquireReply([0, 'host:1:abc 3', 2500])).toEqual({
      acquired: false,
      holder: 'host:1:abc 3',
      remainingMs: 2500,
    });
    // The key expired between EXISTS and GET cannot happen inside a script, but a missing TTL can.
    expect(decodeAcquireReply([0, 'x 1', -1])).toEqual({
      acquired: false,
      holder: 'x 1',
      remainingMs: 0,
    });
  });

  it('decodes renewals', () => {
    expect(decodeRenewReply([1])).toEqual({ renewed: true });
    expect(decodeRenewReply([0, 'other 9'])).toEqual({ renewed: false, holder: 'other 9' });
    expect(decodeRenewReply([0, null])).toEqual({ renewed: false, holder: '(nobody)' });
  });

  it.each([[null], ['OK'], [[2]], [[1, 0]], [[1, 'x']]])(
    'refuses a reply it does not understand: %p',
    (reply) => {
      expect(() => decodeAcquireReply(reply)).toThrow(/unexpected reply/);
    },
  );
});

describe('defaultLeaseOwner', () => {
  it('is unique per call and has no whitespace (the value is "<owner> <token>")', () => {
    const a = defaultLeaseOwner();
    expect(a).not.toBe(defaultLeaseOwner());
    expect(a).not.toMatch(/\s/);
    expect(a).toContain(String(process.pid));
  });
});
