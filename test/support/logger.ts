import { createLogger, type Logger } from '../../src/core/logger.js';

/** Warnings and errors of daemons under test go to stderr, JSON, so failures explain themselves. */
export function testLogger(name: string): Logger {
  return createLogger({
    level: process.env.CDC_LOG_LEVEL ?? 'warn',
    destination: process.stderr,
    base: { test: name },
  });
}
