import { describe, expect, it } from '@jest/globals';
import { ConfigError } from '../core/errors.js';
import { list, nonNegativeNumber, port, positiveInt } from './cli-flags.js';

describe('command-line values', () => {
  it('accepts good values', () => {
    expect(positiveInt('--chunk-size', '500')).toBe(500);
    expect(nonNegativeNumber('--chunks-per-second', '0')).toBe(0);
    expect(nonNegativeNumber('--chunks-per-second', '2.5')).toBe(2.5);
    expect(port('--metrics-port', '0')).toBe(0);
    expect(list(' a.b, c.d ,,')).toEqual(['a.b', 'c.d']);
    expect(list(undefined)).toEqual([]);
  });

  it('rejects bad values with a ConfigError naming the flag and the value', () => {
    for (const [parse, text] of [
      [() => positiveInt('--chunk-size', '0'), '--chunk-size: must be a positive integer, got "0"'],
      [() => positiveInt('--chunk-size', '1.5'), '--chunk-size'],
      [() => positiveInt('--chunk-size', 'ten'), '--chunk-size'],
      [() => nonNegativeNumber('--rate', '-1'), '--rate: must be a number of at least 0, got "-1"'],
      [() => nonNegativeNumber('--rate', ''), '--rate'],
      [() => port('--metrics-port', '70000'), '--metrics-port: must be a TCP port'],
    ] as const) {
      expect(parse).toThrow(ConfigError);
      expect(parse).toThrow(text);
    }
  });
});
