import type mysql from 'mysql2/promise';
import { setTimeout as sleep } from 'node:timers/promises';
import { randomInt } from '../../support/random.js';

/**
 * Application traffic on a `(id INT PRIMARY KEY, v INT, note VARCHAR)` table
 * while a snapshot, bootstrap or verify runs: updates, deletes, inserts of new
 * keys and re-inserts of deleted ones, ten statements per round trip, each
 * its own transaction.
 */
export class Writer {
  writes = 0;
  #stopped = false;
  #done: Promise<void> | undefined;

  constructor(
    private readonly connection: mysql.Connection,
    private readonly table: string,
    private readonly random: () => number,
    private readonly keys: { maxId: number; newIdsFrom: number; tag: string },
    /** Target statements per second; 0 = as fast as the server answers. */
    private readonly perSecond = 0,
  ) {}

  start(): this {
    this.#done = this.#loop();
    return this;
  }

  async stop(): Promise<number> {
    this.#stopped = true;
    await this.#done;
    return this.writes;
  }

  async #loop(): Promise<void> {
    const { maxId, tag } = this.keys;
    let nextId = this.keys.newIdsFrom;
    const started = Date.now();
    while (!this.#stopped) {
      const statements: string[] = [];
      for (let i = 0; i < 10; i += 1) {
        const r = this.random();
        const id = randomInt(this.random, 1, maxId);
        const n = this.writes + i;
        if (r < 0.6) {
          statements.push(
            `UPDATE ${this.table} SET v = v + 1, note = '${tag}-u${n}' WHERE id = ${id}`,
          );
        } else if (r < 0.8) {
          statements.push(`DELETE FROM ${this.table} WHERE id = ${id}`);
        } else if (r < 0.9) {
          statements.push(
            `INSERT INTO ${this.table} VALUES (${id}, 1, '${tag}-r${n}') ON DUPLICATE KEY UPDATE note = '${tag}-d${n}'`,
          );
        } else {
          statements.push(`INSERT INTO ${this.table} VALUES (${nextId}, 0, '${tag}-n${n}')`);
          nextId += 1;
        }
      }
      await this.connection.query(statements.join('; '));
      this.writes += statements.length;
      if (this.perSecond > 0) {
        const due = started + (this.writes / this.perSecond) * 1000;
        const wait = due - Date.now();
        if (wait > 0) await sleep(wait);
      }
    }
  }
}
