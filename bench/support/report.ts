import type { MachineInfo } from './machine.js';
import type { ScenarioResult, Table } from './scenario.js';

export interface RunFile {
  benchmark: 'suite';
  startedAt: string;
  finishedAt: string;
  scale: number;
  git: { commit: string | null; dirty: boolean | null };
  machine: MachineInfo & { mariadb: string | null; kafka: string } & Record<string, unknown>;
  scenarios: Record<
    string,
    { title: string; durationMs: number; error?: string; result?: ScenarioResult; plots: string[] }
  >;
}

export function markdownTable(table: Table): string {
  const esc = (cell: string): string => cell.replace(/\|/g, '\\|');
  const lines = [
    `| ${table.header.map(esc).join(' | ')} |`,
    `|${table.header.map(() => ' --- ').join('|')}|`,
    ...table.rows.map((row) => `| ${row.map(esc).join(' | ')} |`),
  ];
  return lines.join('\n');
}

/** The whole run as Markdown: machine, targets, then each scenario's tables, plots and notes. */
export function markdownReport(run: RunFile, plotDir: string): string {
  const m = run.machine;
  const out: string[] = [
    `# Bench results ${run.startedAt}`,
    '',
    `Machine: ${m.nproc} cores (${m.cpuModel}), ${Math.round(m.memoryTotalMb / 1024)} GiB, ${m.os}; ` +
      `node ${m.node}, ${m.java ?? 'no java'}, MariaDB ${m.mariadb ?? '?'}, Kafka ${m.kafka}. ` +
      `Load average at start ${m.loadAverageAtStart.join(' ')}.`,
    `Commit ${run.git.commit ?? '?'}${run.git.dirty === true ? ' (with uncommitted changes in src/)' : ''}; scale ${run.scale}` +
      `${run.scale < 1 ? ' (quick run: figures are indicative only)' : ''}.`,
    '',
    'The machine is shared with other work, so absolute figures are noisy; each comparison is a ratio against a reference measured in the same run.',
    '',
    '## Targets',
    '',
  ];
  const targetRows: string[][] = [];
  for (const [name, s] of Object.entries(run.scenarios)) {
    if (s.error !== undefined)
      targetRows.push([name, 'scenario failed', '', s.error.split('\n')[0] ?? '', 'FAIL']);
    for (const t of s.result?.targets ?? [])
      targetRows.push([name, t.name, t.target, t.actual, t.pass ? 'pass' : 'MISS']);
  }
  out.push(
    markdownTable({
      title: 'targets',
      header: ['scenario', 'target', 'wanted', 'measured', ''],
      rows: targetRows,
    }),
    '',
  );
  for (const [name, s] of Object.entries(run.scenarios)) {
    out.push(
      `## ${name}: ${s.title}`,
      '',
      `Duration ${Math.round(s.durationMs / 1000)} s. See [bench/scenarios/${name}/README.md](../scenarios/${name}/README.md).`,
      '',
    );
    if (s.error !== undefined) {
      out.push('**Failed:**', '', '```', s.error, '```', '');
      continue;
    }
    const result = s.result;
    if (result === undefined) continue;
    for (const table of result.tables) {
      out.push(`### ${table.title}`, '', markdownTable(table), '');
      if (table.note !== undefined) out.push(table.note, '');
    }
    for (const t of result.targets)
      if (t.note !== undefined)
        out.push(`- **${t.name}** (${t.pass ? 'pass' : 'MISS'}): ${t.note}`);
    if (result.targets.some((t) => t.note !== undefined)) out.push('');
    for (const note of result.notes) out.push(`- ${note}`);
    if (result.notes.length > 0) out.push('');
    for (const plot of s.plots) out.push(`![${name} ${plot}](${plotDir}${plot})`, '');
  }
  return out.join('\n') + '\n';
}
