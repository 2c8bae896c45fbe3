import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The repository root: the nearest directory above this module with a
 * package.json. Works from the sources and from the compiled `dist-bench/`.
 */
export function repoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'bench'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) return process.cwd();
    dir = parent;
  }
}

/** The commit measured, and whether the work tree had changes (results of a dirty tree say so). */
export function gitRevision(root: string): { commit: string | null; dirty: boolean | null } {
  try {
    const commit = execFileSync('git', ['rev-parse', 'HEAD'], {
      cwd: root,
      encoding: 'utf8',
    }).trim();
    const status = execFileSync('git', ['status', '--porcelain', '--', 'src', 'package.json'], {
      cwd: root,
      encoding: 'utf8',
    });
    return { commit, dirty: status.trim().length > 0 };
  } catch (err) {
    if (err instanceof Error) return { commit: null, dirty: null };
    throw err;
  }
}

/** `2024-05-01T10:20:30.123Z` → `20240501-102030`: sortable, safe in file names. */
export function fileTimestamp(date: Date): string {
  return date
    .toISOString()
    .replace(/\.\d+Z$/, '')
    .replace(/[-:]/g, '')
    .replace('T', '-');
}
