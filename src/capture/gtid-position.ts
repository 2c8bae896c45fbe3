/**
 * Comparing two saved capture positions. Capture keeps its position in two
 * places (the checkpoint store and a compacted Kafka topic); both copies are
 * written only after Kafka acknowledged everything before them, so either is
 * safe to resume from, and the one further ahead replays less. Positions are
 * MariaDB GTID positions (`domain-server-seq,...`: the last transaction per
 * domain) or MySQL GTID sets (`uuid:1-5:7,...`: every executed transaction).
 */

/** Whether `a` includes everything `b` does; undefined when that cannot be told (other servers in a domain). */
export function positionCovers(a: string, b: string): boolean | undefined {
  const flavorA = positionFlavor(a);
  const flavorB = positionFlavor(b);
  if (flavorA === 'empty' || flavorB === 'empty') {
    if (flavorB === 'empty') return true;
    return false;
  }
  if (flavorA !== flavorB) return undefined;
  return flavorA === 'mariadb' ? mariadbCovers(a, b) : mysqlCovers(a, b);
}

/**
 * Of two safe positions, the one to resume from: the one that covers the
 * other, or, when neither does, the one saved last.
 */
export function furthestPosition<T extends { position: string; savedAtMs: number }>(a: T, b: T): T {
  const aCoversB = positionCovers(a.position, b.position);
  const bCoversA = positionCovers(b.position, a.position);
  if (aCoversB === true && bCoversA !== true) return a;
  if (bCoversA === true && aCoversB !== true) return b;
  return b.savedAtMs > a.savedAtMs ? b : a;
}

function positionFlavor(position: string): 'empty' | 'mariadb' | 'mysql' {
  const trimmed = position.trim();
  if (trimmed === '') return 'empty';
  return trimmed.includes(':') ? 'mysql' : 'mariadb';
}

interface MariadbEntry {
  server: string;
  seq: bigint;
}

function parseMariadb(position: string): Map<string, MariadbEntry> {
  const domains = new Map<string, MariadbEntry>();
  for (const part of position.split(',')) {
    const text = part.trim();
    if (text === '') continue;
    const match = /^(\d+)-(\d+)-(\d+)$/.exec(text);
    if (match === null) throw new Error(`not a MariaDB GTID position: ${JSON.stringify(position)}`);
    domains.set(match[1] as string, {
      server: match[2] as string,
      seq: BigInt(match[3] as string),
    });
  }
  return domains;
}

function mariadbCovers(a: string, b: string): boolean | undefined {
  const left = parseMariadb(a);
  let unknown = false;
  for (const [domain, entry] of parseMariadb(b)) {
    const mine = left.get(domain);
    if (mine === undefined) return false;
    // After a failover within a domain, sequence numbers of another server are not comparable.
    if (mine.server !== entry.server) unknown = true;
    else if (mine.seq < entry.seq) return false;
  }
  return unknown ? undefined : true;
}

type Intervals = [bigint, bigint][];

function parseMysql(position: string): Map<string, Intervals> {
  const sources = new Map<string, Intervals>();
  for (const part of position.split(',')) {
    const text = part.trim();
    if (text === '') continue;
    const [uuid, ...ranges] = text.split(':');
    if (uuid === undefined || ranges.length === 0)
      throw new Error(`not a MySQL GTID set: ${JSON.stringify(position)}`);
    // A tag (MySQL 8.3+: `uuid:tag:1-5`) starts a group of ranges of its own.
    let key = uuid.toLowerCase();
    for (const range of ranges) {
      const match = /^(\d+)(?:-(\d+))?$/.exec(range);
      if (match === null) {
        if (!/^[a-z_][a-z0-9_]*$/i.test(range))
          throw new Error(`not a MySQL GTID set: ${JSON.stringify(position)}`);
        key = `${uuid.toLowerCase()}:${range.toLowerCase()}`;
        continue;
      }
      const start = BigInt(match[1] as string);
      const list = sources.get(key) ?? [];
      list.push([start, match[2] === undefined ? start : BigInt(match[2])]);
      sources.set(key, list);
    }
  }
  return sources;
}

function mysqlCovers(a: string, b: string): boolean {
  const left = parseMysql(a);
  for (const [uuid, ranges] of parseMysql(b)) {
    const mine = merge(left.get(uuid) ?? []);
    for (const [start, end] of ranges) {
      if (!mine.some(([s, e]) => s <= start && end <= e)) return false;
    }
  }
  return true;
}

function merge(ranges: Intervals): Intervals {
  const sorted = [...ranges].sort((x, y) => (x[0] < y[0] ? -1 : x[0] > y[0] ? 1 : 0));
  const merged: Intervals = [];
  for (const [start, end] of sorted) {
    const last = merged[merged.length - 1];
    if (last !== undefined && start <= last[1] + 1n) {
      if (end > last[1]) last[1] = end;
    } else merged.push([start, end]);
  }
  return merged;
}
