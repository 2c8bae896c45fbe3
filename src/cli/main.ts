#!/usr/bin/env -S node --max-semi-space-size=4
/**
 * The `cdc-replicator` executable. All behaviour lives in runCli; this file
 * only connects it to the real process.
 *
 * The shebang's V8 flag is part of the product: the daemon allocates many
 * short-lived objects per change, and V8's default 16 MiB semi-spaces let
 * the young generation alone hold ~50 MiB. 4 MiB keeps the daemon's peak
 * RSS under 256 MiB on any backlog at the same throughput (measured with
 * `npm run bench -- backlog-memory`). It cannot be set once the process
 * runs, so `node dist/cli/main.js` without it is the unbounded variant.
 */
import { runCli } from './program.js';

process.exitCode = await runCli(process.argv.slice(2), {
  stdout: process.stdout,
  stderr: process.stderr,
});
// The command is over. A connection that a failed drain could not close must
// not keep the process (and an orchestrator's restart) waiting; the unref'd
// timer fires only if something else still holds the event loop open.
setTimeout(() => process.exit(), 5000).unref();
