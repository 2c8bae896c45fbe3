import { describe, expect, it } from '@jest/globals';
import { portableCreateTable } from './bootstrap.js';

describe('portableCreateTable', () => {
  it('qualifies the table and leaves out the version columns prepare adds', () => {
    const shown = [
      'CREATE TABLE `t` (',
      '  `id` int(11) NOT NULL,',
      '  `note` varchar(40) NOT NULL,',
      '  `_cdc_ts` timestamp(6) NOT NULL DEFAULT current_timestamp(6) ON UPDATE current_timestamp(6) INVISIBLE,',
      '  `_cdc_ver` longtext CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT NULL INVISIBLE CHECK (json_valid(`_cdc_ver`)),',
      '  PRIMARY KEY (`id`)',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
    ].join('\n');
    expect(portableCreateTable('app', 't', shown)).toBe(
      [
        'CREATE TABLE `app`.`t` (',
        '  `id` int(11) NOT NULL,',
        '  `note` varchar(40) NOT NULL,',
        '  PRIMARY KEY (`id`)',
        ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
      ].join('\n'),
    );
  });

  it("leaves out a governed table's key-hash column and its index", () => {
    const shown = [
      'CREATE TABLE `people` (',
      '  `id` int(11) NOT NULL,',
      '  `_cdc_ts` timestamp(6) NOT NULL DEFAULT CURRENT_TIMESTAMP(6) ON UPDATE CURRENT_TIMESTAMP(6),',
      '  `_cdc_ver` json DEFAULT NULL,',
      "  `_cdc_key_hash` binary(32) GENERATED ALWAYS AS (unhex(sha2(json_array(cast(`id` as char charset utf8mb4)),256))) VIRTUAL COMMENT 'cdc-replicator tombstone key hash 0123456789abcdef',",
      '  PRIMARY KEY (`id`),',
      '  KEY `_cdc_key_hash` (`_cdc_key_hash`)',
      ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
    ].join('\n');
    expect(portableCreateTable('app', 'people', shown)).toBe(
      [
        'CREATE TABLE `app`.`people` (',
        '  `id` int(11) NOT NULL,',
        '  PRIMARY KEY (`id`)',
        ') ENGINE=InnoDB DEFAULT CHARSET=utf8mb4',
      ].join('\n'),
    );
  });

  it('refuses text that is not a CREATE TABLE', () => {
    expect(() => portableCreateTable('app', 't', 'CREATE VIEW `t` AS SELECT 1')).toThrow(
      'cannot read the definition of app.t',
    );
  });
});
