import { Writable } from 'node:stream';
import { createLogger } from './logger.js';
import { Secret } from './secret.js';

function capture(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _encoding, callback) {
      chunks.push(chunk.toString());
      callback();
    },
  });
  return {
    stream,
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.length > 0)
        .map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

describe('logger', () => {
  it('writes JSON lines with the base fields', () => {
    const out = capture();
    const logger = createLogger({ destination: out.stream, base: { region: 'us-east' } });
    logger.info({ table: 'app.users' }, 'captured');
    const [line] = out.lines();
    expect(line).toMatchObject({
      level: 30,
      region: 'us-east',
      table: 'app.users',
      msg: 'captured',
    });
  });

  it('redacts secret fields at any of the usual depths', () => {
    const out = capture();
    const logger = createLogger({ destination: out.stream });
    logger.info(
      { mysql: { host: 'db', password: 'hunter2' }, redis: { url: 'redis://:pw@h' } },
      'connect',
    );
    logger.info({ password: 'top' }, 'flat');
    const text = JSON.stringify(out.lines());
    expect(text).not.toContain('hunter2');
    expect(text).not.toContain(':pw@');
    expect(text).not.toContain('"top"');
    expect(text).toContain('"host":"db"');
  });

  it('never prints a Secret, whatever the field is called', () => {
    const out = capture();
    const logger = createLogger({ destination: out.stream });
    logger.info({ credential: new Secret('s3cr3t') }, 'x');
    expect(JSON.stringify(out.lines())).not.toContain('s3cr3t');
  });
});
