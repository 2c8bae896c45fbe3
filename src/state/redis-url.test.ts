import { redactRedisUrl, redisUrlSecrets, scrubSecrets } from './redis-url.js';

describe('redactRedisUrl', () => {
  it.each([
    ['redis://user:pass@host:6379', 'redis://user:***@host:6379'],
    ['redis://:s3cr3t@cache:6380/2', 'redis://:***@cache:6380/2'],
    ['rediss://default:p%40ss@cache.example.com', 'rediss://default:***@cache.example.com'],
    ['redis://cache:6379?password=hunter2&db=1', 'redis://cache:6379?password=***&db=1'],
    ['redis://127.0.0.1:6379', 'redis://127.0.0.1:6379'],
    ['redis://user@host', 'redis://user@host'],
  ])('%s → %s', (url, expected) => {
    expect(redactRedisUrl(url)).toBe(expected);
  });

  it('never echoes a string that is not a URL', () => {
    expect(redactRedisUrl('hunter2')).not.toContain('hunter2');
  });
});

describe('scrubbing secrets from messages', () => {
  it('masks the password in raw and percent-decoded form', () => {
    const secrets = redisUrlSecrets('redis://u:p%40ss@host?password=other');
    const message = 'auth p@ss / p%40ss / other failed';
    expect(scrubSecrets(message, secrets)).toBe('auth *** / *** / *** failed');
  });

  it('has nothing to mask without credentials', () => {
    expect(redisUrlSecrets('redis://host:6379')).toEqual([]);
  });
});
