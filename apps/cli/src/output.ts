/** Formats a time as Litestream's listings do: RFC 3339 in UTC, whole seconds. */
export function formatTime(d: Date | undefined): string {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}

/** Formats a duration in milliseconds the way Go prints a rounded time.Duration (`3.2s`, `1m5s`, `2h0m0s`). */
export function formatDuration(ms: number): string {
  if (ms < 1_000) return `${Math.round(ms)}ms`;
  const s = ms / 1_000;
  if (s < 60) return `${Math.round(s * 10) / 10}s`;
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = Math.round(s % 60);
  return h > 0 ? `${h}h${m}m${sec}s` : `${m}m${sec}s`;
}

/** A table cell: text, a number, or a time. */
export type Cell = string | number | Date;

/**
 * Prints rows as aligned columns separated by two spaces (as Go's tabwriter does for Litestream),
 * or, with `json`, as a JSON array of objects keyed by the column names.
 */
export function printTable(columns: readonly string[], rows: readonly (readonly Cell[])[], json: boolean): void {
  if (json) {
    // Times keep their milliseconds in JSON, so a listed time can be passed back to -timestamp.
    const objs = rows.map((r) => Object.fromEntries(columns.map((c, i) => [c, r[i] instanceof Date ? (r[i] as Date).toISOString() : r[i]])));
    process.stdout.write(JSON.stringify(objs, null, 2) + '\n');
    return;
  }
  const cells = [columns, ...rows].map((r) => r.map((c) => (c instanceof Date ? formatTime(c) : String(c))));
  const widths = columns.map((_, i) => Math.max(...cells.map((r) => r[i]!.length)));
  for (const r of cells) {
    process.stdout.write(r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]! + 2))).join('') + '\n');
  }
}
