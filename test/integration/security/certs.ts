/**
 * Throwaway certificates for the TLS tests, made with the machine's openssl:
 * a CA, and a server certificate for 127.0.0.1 signed by one.
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
}

/** A self-signed CA: `<name>-ca.pem` and its key `<name>-ca.key` in `dir`. */
export function makeCa(dir: string, name: string): void {
  openssl(dir, [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    `/CN=${name} test CA`,
    '-keyout',
    `${name}-ca.key`,
    '-out',
    `${name}-ca.pem`,
  ]);
}

/** `server.pem` / `server.key` for 127.0.0.1 and localhost, signed by CA `<ca>`. */
export function makeServerCert(dir: string, ca: string): void {
  writeFileSync(join(dir, 'server.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  openssl(dir, [
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    'server.key',
    '-out',
    'server.csr',
  ]);
  openssl(dir, [
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    `${ca}-ca.pem`,
    '-CAkey',
    `${ca}-ca.key`,
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'server.ext',
    '-out',
    'server.pem',
  ]);
}
