import { describe, expect, it } from '@jest/globals';
import { chooseSandboxMode } from '../index.js';
import { missingImages, normaliseImageName, resolveImages } from './images.js';

const LOCAL = new Set([
  'cdc-local/mariadb:10.11',
  'cdc-local/mysql:8.0.12',
  'cdc-local/kafka:3.9.1',
  'cdc-local/redis:7',
]);

describe('docker sandbox images', () => {
  it('defaults to the upstream images, falls back to the local builds, and obeys CDC_IMAGE_*', () => {
    expect(resolveImages(new Set(), {})).toEqual({
      mariadb: 'mariadb:10.11',
      mysql8: 'mysql:8.0',
      kafka: 'apache/kafka:3.9.1',
      redis: 'redis:7',
    });
    expect(resolveImages(LOCAL, {}).mariadb).toBe('cdc-local/mariadb:10.11');
    expect(resolveImages(new Set([...LOCAL, 'mariadb:10.11']), {}).mariadb).toBe('mariadb:10.11');
    expect(resolveImages(LOCAL, { CDC_IMAGE_REDIS: 'mirror/redis:7.2' }).redis).toBe(
      'mirror/redis:7.2',
    );
  });

  it('names missing images, reading a name without a tag as :latest', () => {
    expect(normaliseImageName('host:5000/redis')).toBe('host:5000/redis:latest');
    expect(normaliseImageName('redis:7')).toBe('redis:7');
    const images = resolveImages(LOCAL, { CDC_IMAGE_KAFKA: 'apache/kafka' });
    expect(missingImages(images, ['mariadb', 'kafka'], LOCAL)).toEqual(['apache/kafka']);
  });
});

describe('sandbox mode selection', () => {
  const engine = (present: Set<string>) => () => ({ engine: true as const, present });
  it('obeys CDC_SANDBOX', () => {
    expect(chooseSandboxMode({ CDC_SANDBOX: 'local' }, engine(LOCAL)).mode).toBe('local');
    expect(
      chooseSandboxMode({ CDC_SANDBOX: 'docker' }, () => ({ engine: false, reason: 'x' })).mode,
    ).toBe('docker');
    expect(() => chooseSandboxMode({ CDC_SANDBOX: 'podman' })).toThrow(/not one of local, docker/);
  });

  it('prefers docker when an engine answers and every image is present, and says why', () => {
    const docker = chooseSandboxMode({}, engine(LOCAL));
    expect(docker.mode).toBe('docker');
    expect(docker.reason).toMatch(/cdc-local\/kafka:3\.9\.1/);
    const noEngine = chooseSandboxMode({}, () => ({ engine: false, reason: 'no docker CLI' }));
    expect(noEngine).toEqual({ mode: 'local', reason: 'CDC_SANDBOX unset; no docker CLI' });
    const partial = chooseSandboxMode({}, engine(new Set(['cdc-local/redis:7'])));
    expect(partial.mode).toBe('local');
    expect(partial.reason).toMatch(/lacks mariadb:10\.11/);
  });
});
