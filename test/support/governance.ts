/**
 * The governance tests' shared setup (issue 16, docs/GOVERNANCE.md): three
 * regions, two of them in zone eu, the issue's policy with an hmac key from
 * the environment, the `app.people` table and rows of each residency.
 */
import { createHmac } from 'node:crypto';

export const GOVERNED_REGIONS = ['eu-west', 'eu-central', 'us-east'];
export const MASK_KEY = 'governance-test-key-0123456789-abcdef';

/** `governance:` for the cluster's YAML (under preview: run and prepare start). */
export const GOVERNANCE_YAML = `governance:
  preview: true
  zones: { eu: [eu-west, eu-central] }
  policies:
    - name: people-eu
      tables: [app.people]
      residency:
        column: country
        rules:
          - { in: [DE, FR], zone: eu, masked: [us-east] }
          - { in: [CH], zone: eu }
        default: all
      masking:
        email: { hmac: { key: '\${CDC_MASK_KEY}' } }
        phone: nullify
        note: { redact: '***' }
        name: { truncate: 1 }
    - name: vault-nowhere
      tables: [app.vault]
      residency: { default: none }
`;

export const GOVERNED_DDL = [
  'CREATE DATABASE app',
  `CREATE TABLE app.people (
     id INT PRIMARY KEY,
     country CHAR(2) NOT NULL,
     email VARCHAR(255),
     phone VARCHAR(32),
     note TEXT,
     name VARCHAR(100)
   ) DEFAULT CHARSET = utf8mb4`,
  'CREATE TABLE app.vault (id INT PRIMARY KEY, secret VARCHAR(64))',
];

/** Plain in the zone, masked in us-east. */
export const DE = {
  id: 1,
  country: 'DE',
  email: 'anna.schmidt.7731@example.de',
  phone: '+49 30 5550 1937',
  note: 'Prefers contact by letter, Schlossallee 12',
  name: 'Anna Schmidtbauer',
};
/** In the zone only. */
export const CH = {
  id: 2,
  country: 'CH',
  email: 'urs.meierhans.4410@example.ch',
  phone: '+41 44 5550 2846',
  note: 'Account under review, Bahnhofstrasse 8',
  name: 'Urs Meierhans',
};
/** Plain everywhere. */
export const US = {
  id: 3,
  country: 'US',
  email: 'jo.public@example.com',
  phone: '+1 212 555 0100',
  note: 'plain everywhere',
  name: 'Jo Public',
};

/** The hmac mask, computed from its definition: HMAC-SHA256 over the UTF-8 text, lowercase hex. */
export const hmacHex = (text: string): string =>
  createHmac('sha256', Buffer.from(MASK_KEY, 'utf8'))
    .update(Buffer.from(text, 'utf8'))
    .digest('hex');

/** DE as us-east must hold it: each masked column through its mask. */
export const DE_MASKED = {
  id: DE.id,
  country: 'DE',
  email: hmacHex(DE.email),
  phone: null,
  note: '***',
  name: 'A',
};
