// jest globalSetup of the integration project: tests that run the daemon as
// a separate process (kill -9, SIGTERM) start `node dist/cli/main.js`, so the
// build must be current. tsc is incremental enough to be cheap when nothing changed.
import { execFileSync } from 'node:child_process';
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

export default function buildDist() {
  // The suite's services run as local processes unless a test asks for
  // containers (mode: 'docker', or CDC_SANDBOX=docker in its environment):
  // automatic selection would pick Docker wherever an engine and the images
  // are present (CI), and only a chosen part of the suite runs in both modes.
  // Jest copies process.env into each test file's environment after this runs.
  process.env.CDC_SANDBOX ??= 'local';
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  execFileSync(
    process.execPath,
    [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'],
    {
      cwd: root,
      stdio: 'inherit',
    },
  );
}
