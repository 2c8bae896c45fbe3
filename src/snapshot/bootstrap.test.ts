import { describe, expect, it } from '@jest/globals';
import { peoplePolicy } from '../governance/people-policy.fixture.js';
import { governedSnapshotSources, portableCreateTable } from './bootstrap.js';

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

describe('governedSnapshotSources', () => {
  const governance = {
    zones: { eu: ['eu-west', 'eu-central'] },
    regions: ['us-east', 'eu-west', 'eu-central'],
    policies: [peoplePolicy()],
  };

  it('adds a zone region for the rows a non-zone source does not hold plain (DE/FR masked there, CH not at all)', () => {
    expect(governedSnapshotSources(governance, 'us-east', 'eu-central', [])).toEqual([
      {
        region: 'eu-west',
        tables: ['app.people'],
        reasons: [
          'app.people: rows whose country is DE, FR (policy people-eu)',
          'app.people: rows whose country is CH (policy people-eu)',
        ],
      },
    ]);
  });

  it('adds the zone for masked rows of a new region outside it, not the CH rows it may not hold', () => {
    const withWest = { ...governance, regions: [...governance.regions, 'us-west'] };
    const policy = peoplePolicy();
    const rules = policy.residency.rules;
    const masked = {
      ...policy,
      residency: {
        ...policy.residency,
        rules: [{ ...rules[0]!, masked: ['us-east', 'us-west'] }, rules[1]!],
      },
    };
    expect(
      governedSnapshotSources({ ...withWest, policies: [masked] }, 'us-east', 'us-west', []),
    ).toEqual([
      {
        region: 'eu-west',
        tables: ['app.people'],
        reasons: ['app.people: rows whose country is DE, FR (policy people-eu)'],
      },
    ]);
  });

  it('needs nothing more from a source that holds plain every row the new region may hold', () => {
    expect(governedSnapshotSources(governance, 'eu-west', 'eu-central', [])).toEqual([]);
    expect(governedSnapshotSources(governance, 'eu-west', 'us-east', [])).toEqual([]);
  });

  it('follows --tables and ignores configurations without policies', () => {
    expect(governedSnapshotSources(governance, 'us-east', 'eu-central', ['app.orders'])).toEqual(
      [],
    );
    expect(governedSnapshotSources(undefined, 'us-east', 'eu-central', [])).toEqual([]);
  });
});
