import { describe, expect, it } from '@jest/globals';
import type { ServerInfo } from '../mysql/introspect.js';
import { binlogSettingProblems } from './server-check.js';

const mysql8: ServerInfo = { flavor: 'mysql', version: '8.0.12', major: 8, minor: 0, patch: 12 };
const mariadb: ServerInfo = {
  flavor: 'mariadb',
  version: '10.11.6-MariaDB',
  major: 10,
  minor: 11,
  patch: 6,
};

/** The global variables of a server configured for capture (as SHOW GLOBAL VARIABLES reads them). */
function goodMysql(overrides: Record<string, string> = {}): Map<string, unknown> {
  return new Map<string, unknown>(
    Object.entries({
      log_bin: 'ON',
      binlog_format: 'ROW',
      binlog_row_image: 'FULL',
      binlog_row_metadata: 'FULL',
      gtid_mode: 'ON',
      enforce_gtid_consistency: 'ON',
      binlog_row_value_options: '',
      ...overrides,
    }),
  );
}

describe('binlogSettingProblems', () => {
  it('accepts a MySQL 8.0.12 server configured for capture (no binlog_transaction_compression there)', () => {
    expect(binlogSettingProblems(mysql8, goodMysql())).toEqual([]);
  });

  it('refuses partial JSON updates on MySQL, naming the value, why and the fix', () => {
    expect(
      binlogSettingProblems(mysql8, goodMysql({ binlog_row_value_options: 'PARTIAL_JSON' })),
    ).toEqual([
      'binlog_row_value_options is PARTIAL_JSON, needs to be empty (partial JSON updates are not ' +
        'decoded: the after image would lack the full document): ' +
        "SET GLOBAL binlog_row_value_options = '' and put binlog_row_value_options='' in the server's configuration",
    ]);
  });

  it('refuses compressed transaction payloads where the variable exists, and accepts them off', () => {
    const [line] = binlogSettingProblems(
      mysql8,
      goodMysql({ binlog_transaction_compression: 'ON' }),
    );
    expect(line).toContain('binlog_transaction_compression is ON, needs OFF');
    expect(line).toContain("SET GLOBAL binlog_transaction_compression = 'OFF'");
    expect(
      binlogSettingProblems(mysql8, goodMysql({ binlog_transaction_compression: 'OFF' })),
    ).toEqual([]);
  });

  it('requires GTID mode and GTID consistency on MySQL, listing every wrong setting', () => {
    const lines = binlogSettingProblems(
      mysql8,
      goodMysql({ gtid_mode: 'OFF_PERMISSIVE', enforce_gtid_consistency: 'WARN' }),
    );
    expect(lines).toHaveLength(2);
    expect(lines[0]).toContain('gtid_mode is OFF_PERMISSIVE, needs ON');
    expect(lines[0]).toContain('--gtid-mode=ON --enforce-gtid-consistency=ON');
    expect(lines[1]).toContain('enforce_gtid_consistency is WARN, needs ON');
    expect(lines[1]).toContain("SET GLOBAL enforce_gtid_consistency = 'ON'");
  });

  it('reads a required variable the server lacks as unset', () => {
    const actual = goodMysql();
    actual.delete('gtid_mode');
    const lines = binlogSettingProblems(mysql8, actual);
    expect(lines).toHaveLength(1);
    expect(lines[0]).toContain('gtid_mode is unset, needs ON');
  });

  it('asks MariaDB only for the settings it has', () => {
    const actual = new Map<string, unknown>([
      ['log_bin', 'ON'],
      ['binlog_format', 'ROW'],
      ['binlog_row_image', 'FULL'],
      ['binlog_row_metadata', 'FULL'],
    ]);
    expect(binlogSettingProblems(mariadb, actual)).toEqual([]);
    actual.set('log_bin', 'OFF');
    expect(binlogSettingProblems(mariadb, actual)).toEqual([
      'log_bin is OFF, needs ON (capture reads the binary log): start the server with --log-bin',
    ]);
  });
});
