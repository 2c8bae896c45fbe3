import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EnvironmentError } from '../core/errors.js';
import { findExecutable, requirePrograms } from './prerequisites.js';

describe('launcher prerequisites', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'prereq-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('finds an executable and ignores a non-executable file', () => {
    writeFileSync(join(dir, 'redis-server'), '#!/bin/sh\n');
    expect(findExecutable('redis-server', [dir])).toBeUndefined();
    chmodSync(join(dir, 'redis-server'), 0o755);
    expect(findExecutable('redis-server', [dir])).toBe(join(dir, 'redis-server'));
  });

  it('names every missing program, what it is for and what to install', () => {
    writeFileSync(join(dir, 'java'), '#!/bin/sh\n');
    chmodSync(join(dir, 'java'), 0o755);
    let error: unknown;
    try {
      requirePrograms(['mariadbd', 'redisServer', 'java', 'mvn'], [dir]);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(EnvironmentError);
    const message = (error as Error).message;
    expect(message).toContain('`mariadbd` not found');
    expect(message).toContain('apt-get install mariadb-server');
    expect(message).toContain('`redis-server` not found');
    expect(message).toContain('apt-get install redis-server');
    expect(message).toContain('`mvn` not found');
    expect(message).toContain('apt-get install maven');
    expect(message).not.toContain('`java` not found');
  });

  it('returns the resolved paths when everything is present', () => {
    for (const name of ['mariadbd', 'java']) {
      writeFileSync(join(dir, name), '#!/bin/sh\n');
      chmodSync(join(dir, name), 0o755);
    }
    expect(requirePrograms(['mariadbd', 'java'], [dir])).toEqual({
      mariadbd: join(dir, 'mariadbd'),
      java: join(dir, 'java'),
    });
  });
});
