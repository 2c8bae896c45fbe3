#!/usr/bin/env node
/**
 * The `cdc-replicator` executable. All behaviour lives in runCli; this file
 * only connects it to the real process.
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
