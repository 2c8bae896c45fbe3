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
