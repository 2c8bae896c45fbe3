/**
 * The version algebra capture and apply share (DESIGN.md §2–§3): hybrid
 * logical timestamps, the `(hlc, origin)` order, version vectors, the
 * effective version of a row, and the per-row conflict decision. Pure: no I/O,
 * no clocks except the one injected into {@link HybridClock}.
 */
export {
  HybridClock,
  isMicros,
  microsToMysqlTimestamp,
  mysqlTimestampToMicros,
  skewMicros,
  systemClockMicros,
  type PhysicalClock,
} from './hlc.js';
export {
  MAX_VECTOR_ENTRIES,
  REGION_NAME_PATTERN,
  compareCausality,
  compareVersions,
  decodeStoredVersion,
  effectiveVersion,
  encodeStoredVersion,
  isRegionName,
  maxVersion,
  mergeVectors,
  parseStoredVersion,
  validateRowVersion,
  vectorEntry,
  vectorLeq,
  vectorMax,
  vectorsEqual,
  type Causality,
  type EffectiveVersionInput,
  type RowVersion,
  type VersionVector,
} from './version.js';
export {
  joinVersions,
  resolve,
  versionOrder,
  type ApplyOutcome,
  type ConflictStrategy,
  type Resolution,
  type ResolveInput,
} from './resolve.js';
