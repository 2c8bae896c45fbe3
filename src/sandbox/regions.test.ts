import { ConfigError } from '../core/errors.js';
import { resolveRegions } from './regions.js';
import type { DatabaseEngine } from './types.js';

describe('sandbox regions', () => {
  it('makes a bare name a MariaDB region and keeps an explicit engine', () => {
    expect(resolveRegions(['us-east', { name: 'eu-west', engine: 'mysql8' }])).toEqual([
      { name: 'us-east', engine: 'mariadb' },
      { name: 'eu-west', engine: 'mysql8' },
    ]);
  });

  it('defaults to two MariaDB regions', () => {
    expect(resolveRegions()).toEqual([
      { name: 'region-a', engine: 'mariadb' },
      { name: 'region-b', engine: 'mariadb' },
    ]);
  });

  it('names every repeated or empty region and unknown engine at once', () => {
    let error: unknown;
    try {
      resolveRegions([
        'a',
        { name: 'a', engine: 'mysql8' },
        '',
        { name: 'b', engine: 'postgres' as DatabaseEngine },
      ]);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as ConfigError).problems).toEqual([
      'regions[1]: region "a" appears twice',
      'regions[2]: empty region name',
      'regions[3].engine: "postgres" is not one of mariadb, mysql8',
    ]);
  });
});
