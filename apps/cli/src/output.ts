/** Formats a time as Litestream's listings do: RFC 3339 in UTC, whole seconds. */
export function formatTime(d: Date | undefined): string {
  return d ? d.toISOString().replace(/\.\d{3}Z$/, 'Z') : '';
}

const NS_US = 1_000n;
const NS_MS = 1_000_000n;
const NS_S = 1_000_000_000n;

/**
 * Formats a duration as Litestream prints lag: truncated toward zero to whole seconds past 10 s, to
 * tenths past 1 s, to milliseconds past 1 ms (and so on down), then written as Go's Duration.String
 * writes it: `1m59s`, `3.2s`, `999ms`, `0s`, `-5.2s`, `1h0m5s`.
 */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms)) return String(ms);
  let d = BigInt(Math.trunc(ms * 1e6));
  const a = d < 0n ? -d : d;
  const unit = a > 10n * NS_S ? NS_S : a > NS_S ? NS_S / 10n : a > NS_MS ? NS_MS : a > NS_US ? NS_US : 1n;
  d = (d / unit) * unit; // BigInt division truncates toward zero, as Go's Truncate does
  return goDuration(d);
}

/** Go's time.Duration.String for `d` nanoseconds. */
function goDuration(d: bigint): string {
  if (d === 0n) return '0s';
  const sign = d < 0n ? '-' : '';
  const u = d < 0n ? -d : d;
  if (u < NS_US) return `${sign}${u}ns`;
  if (u < NS_MS) return `${sign}${u / NS_US}${fraction(u % NS_US, 3)}µs`;
  if (u < NS_S) return `${sign}${u / NS_MS}${fraction(u % NS_MS, 6)}ms`;
  const secs = u / NS_S;
  let out = `${secs % 60n}${fraction(u % NS_S, 9)}s`;
  const mins = secs / 60n;
  if (mins > 0n) {
    out = `${mins % 60n}m${out}`;
    if (mins >= 60n) out = `${mins / 60n}h${out}`;
  }
  return sign + out;
}

/** `.ddd` for `rem` of a unit with `digits` decimal places, trailing zeros dropped; '' for 0. */
function fraction(rem: bigint, digits: number): string {
  if (rem === 0n) return '';
  return `.${rem.toString().padStart(digits, '0').replace(/0+$/, '')}`;
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
