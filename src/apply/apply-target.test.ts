import type { ApplyEvent } from './apply-event.js';
import { eventToLocal, validateEvents, type ApplyTable, type TopicRoute } from './apply-target.js';
import { SchemaSkew } from './schema-skew.js';

const column = (name: string): ApplyTable['columns'][number] => ({
  name,
  dataType: 'varchar',
  columnType: 'varchar(20)',
  nullable: true,
  invisible: name.startsWith('_cdc_'),
});

/** app.t after this region ran `DROP COLUMN b`, `RENAME COLUMN a TO a2`, then `RENAME COLUMN a2 TO a3`. */
const table: ApplyTable = {
  schema: 'app',
  table: 't',
  columns: ['id', 'a3', 'c', '_cdc_ts', '_cdc_ver'].map(column),
  primaryKey: ['id'],
  generated: new Set(),
  implicitDefaults: new Map(),
  columnHistory: new Map<string, string | null>([
    ['b', null],
    ['a', 'a2'],
    ['a2', 'a3'],
    ['x', 'y'],
    ['y', 'x'],
  ]),
};

const route = { sourceRegion: 'r2', db: 'app', table: 't', heartbeat: false } as TopicRoute;
const event = (after: Record<string, string>): ApplyEvent => ({
  op: 'upsert',
  sourceRegion: 'r2',
  db: 'app',
  table: 't',
  pk: { id: '1' },
  after,
  image: after,
  version: { origin: 'r2', hlc: 1, vv: { r2: 1 } },
  commitTs: 0,
});

describe('events mapped to the columns this region dropped or renamed', () => {
  it('ignores dropped columns and follows renames to the current name', () => {
    const local = eventToLocal(table, event({ id: '1', a: 'va', b: 'vb', c: 'vc' }));
    expect(local.after).toEqual({ id: '1', a3: 'va', c: 'vc' });
    expect(local.image).toEqual(local.after);
  });

  it('prefers a value under the current name, and leaves known events untouched', () => {
    expect(eventToLocal(table, event({ id: '1', a: 'old', a3: 'new' })).after).toEqual({
      id: '1',
      a3: 'new',
    });
    const known = event({ id: '1', a3: 'v' });
    expect(eventToLocal(table, known)).toBe(known);
  });

  it('still holds a column that was never here, and a rename cycle', () => {
    const route2 = { ...route, pipeline: {} } as TopicRoute;
    expect(() => validateEvents(route2, table, [event({ id: '1', tier: 'gold' })])).toThrow(
      SchemaSkew,
    );
    expect(() => validateEvents(route2, table, [event({ id: '1', x: 'v' })])).toThrow(SchemaSkew);
    expect(validateEvents(route2, table, [event({ id: '1', b: 'v' })])[0]?.after).toEqual({
      id: '1',
    });
  });
});
