/**
 * The apply side of governance (docs/GOVERNANCE.md, "Capture and apply"):
 * every decoded row of a governed table is re-checked against the topic it
 * came on before anything else looks at it, and dead letters of governed
 * tables keep no value that was not checked. Shared by the apply stage and
 * the dead-letter replay.
 */
import type { RuntimeOptions } from '../config/compile.js';
import { policyForTable, type GovernancePolicy } from '../governance/policy.js';
import { recheckRow } from '../governance/routing.js';
import {
  RejectedEvent,
  type ApplyEvent,
  type DecodedRow,
  type RejectReason,
} from './apply-event.js';
import type { TopicRoute } from './apply-target.js';

/**
 * `rows` with every row this region may not hold in the topic's form
 * replaced by a `governance_refused` error (no value in its message). The
 * row image checked is the upsert's after image, or a delete's deleted row:
 * what capture routed the change by. Rows of ungoverned tables pass as
 * they are.
 */
export function recheckGovernance(
  options: Pick<RuntimeOptions, 'region' | 'governance'>,
  route: Pick<TopicRoute, 'db' | 'table' | 'form'>,
  rows: readonly DecodedRow[],
): DecodedRow[] {
  const governance = options.governance;
  const policy =
    governance === undefined ? undefined : policyForTable(governance, route.db, route.table);
  const forMe = (decoded: DecodedRow): DecodedRow =>
    'events' in decoded && decoded.events.some((e) => e.evict !== undefined)
      ? {
          row: decoded.row,
          events: decoded.events.filter((e) => e.evict?.regions.includes(options.region) === true),
        }
      : decoded;
  /** An eviction notice or an edit request: both exist only for governed tables. */
  const needsPolicy = (decoded: DecodedRow): boolean =>
    'events' in decoded &&
    decoded.events.some(
      (e) => (e.evict !== undefined && e.evict.erase !== true) || e.edit !== undefined,
    );
  if (policy === undefined || governance === undefined) {
    // Erasure applies to any table; eviction notices exist only for governed
    // tables: one here is forged or from another policy.
    return rows.map((decoded) =>
      needsPolicy(decoded)
        ? {
            row: decoded.row,
            error: new RejectedEvent(
              'governance_refused',
              `an eviction notice or edit request for ${route.db}.${route.table}, which no policy governs here`,
            ),
          }
        : forMe(decoded),
    );
  }
  return rows.map((decoded): DecodedRow => {
    if ('error' in decoded) return decoded;
    // A notice carries no value to check; it concerns only the regions it names.
    if (decoded.events.some((e) => e.evict !== undefined)) return forMe(decoded);
    const edit = decoded.events.find((e) => e.edit !== undefined);
    if (edit !== undefined) {
      const refusal = editRequestProblem(policy, route.form ?? 'plain', edit);
      if (refusal !== undefined)
        return { row: decoded.row, error: new RejectedEvent('governance_refused', refusal) };
      // Every zone region reads the request; only its executor writes it.
      return edit.edit?.executor === options.region ? decoded : { row: decoded.row, events: [] };
    }
    const upsert = decoded.events.find((e) => e.op === 'upsert');
    const image = upsert?.after ?? decoded.events[0]?.image ?? undefined;
    const refusal = recheckRow(policy, governance, options.region, route.form ?? 'plain', image);
    return refusal === undefined
      ? decoded
      : { row: decoded.row, error: new RejectedEvent('governance_refused', refusal) };
  });
}

/**
 * Reasons an event of a governed table can be parked for before its
 * residency was checked (it could not be decoded far enough): its value
 * may be plaintext this region may not hold.
 */
const UNCHECKED_REASONS: ReadonlySet<RejectReason> = new Set([
  'malformed',
  'version_invalid',
  'key_mismatch',
  'table_not_in_pipeline',
  'governance_refused',
]);

/**
 * Whether a dead letter must leave out the message, its key and the error's
 * detail: always for a `governance_refused` one, and for a governed table's
 * event refused before its residency was checked. Such a record keeps the
 * source topic, partition and offset, where an operator allowed to read it
 * finds the message.
 */
export function withholdsValue(
  options: Pick<RuntimeOptions, 'governance'>,
  route: Pick<TopicRoute, 'db' | 'table'> | undefined,
  reason: RejectReason,
): boolean {
  if (reason === 'governance_refused') return true;
  if (route === undefined || options.governance === undefined) return false;
  return (
    UNCHECKED_REASONS.has(reason) &&
    policyForTable(options.governance, route.db, route.table) !== undefined
  );
}

/**
 * Why an edit request may not be applied here, or undefined: it must come
 * on a plain (zone) topic and change no masked column and not the residency
 * column (the editing region holds the row masked and may not move it).
 * No value in the message.
 */
function editRequestProblem(
  policy: GovernancePolicy,
  form: 'plain' | 'masked',
  edit: ApplyEvent,
): string | undefined {
  if (form !== 'plain')
    return `policy ${policy.name}: an edit request came on a masked topic (they go on zone topics only)`;
  const set = Object.keys(edit.after ?? {}).filter((c) => !Object.hasOwn(edit.pk, c));
  const masked = set.filter((c) => policy.masking.has(c));
  if (masked.length > 0)
    return `policy ${policy.name}: an edit request sets masked column(s) ${masked.join(', ')}`;
  const residency = policy.residency.column;
  if (residency !== undefined && set.includes(residency))
    return `policy ${policy.name}: an edit request sets the residency column ${residency}`;
  return undefined;
}
