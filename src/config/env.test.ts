import { expandString } from './env.js';

describe('expandString', () => {
  const env = { HOST: 'db.internal', EMPTY: '', PW: 'p${NOT_EXPANDED}' };

  it.each([
    ['plain text', 'plain text'],
    ['${HOST}', 'db.internal'],
    ['mysql://${HOST}:3306', 'mysql://db.internal:3306'],
    ['${EMPTY}', ''],
    ['${EMPTY:-fallback}', 'fallback'],
    ['${UNSET:-fallback}', 'fallback'],
    ['${UNSET:-}', ''],
    ['${HOST:-fallback}', 'db.internal'],
    ['$${HOST}', '${HOST}'],
    ['cost $5 and $HOST', 'cost $5 and $HOST'],
    ['${PW}', 'p${NOT_EXPANDED}'],
  ])('expands %j to %j', (text, expected) => {
    expect(expandString(text, env)).toEqual({ value: expected, problems: [] });
  });

  it('reports each unset variable by name', () => {
    expect(expandString('${A}-${B}-${HOST}', env).problems).toEqual([
      { kind: 'unset', name: 'A' },
      { kind: 'unset', name: 'B' },
    ]);
  });

  it.each(['${', '${HOST', '${}', '${1X}', '${A B}', '${-x}'])(
    'reports %j as malformed',
    (text) => {
      expect(expandString(text, env).problems).toEqual([{ kind: 'malformed' }]);
    },
  );
});
