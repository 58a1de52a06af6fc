const UNIT_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  'µs': 1e-3, // U+00B5 micro sign
  'μs': 1e-3, // U+03BC greek mu
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
};

const COMPONENT = /^(\d*)(?:\.(\d*))?(ns|us|µs|μs|ms|s|m|h)/;

/**
 * Parses a Go duration string (`10s`, `1m30s`, `250ms`, `1.5h`, `0`) into milliseconds, rounded to
 * the nearest millisecond. Returns an error string instead of throwing so callers can place it.
 */
export function parseGoDuration(text: string): { ms: number } | { error: string } {
  let s = text;
  let sign = 1;
  if (s.startsWith('-') || s.startsWith('+')) {
    if (s[0] === '-') sign = -1;
    s = s.slice(1);
  }
  if (s === '0') return { ms: 0 };
  if (s === '') return { error: `invalid duration '${text}'` };
  if (/^\d+(\.\d*)?$/.test(s)) return { error: `duration '${text}' has no unit` };
  let total = 0;
  while (s.length > 0) {
    const m = COMPONENT.exec(s);
    if (!m) return { error: `invalid duration '${text}'` };
    const whole = m[1] ?? '';
    const frac = m[2] ?? '';
    if (whole === '' && frac === '') return { error: `invalid duration '${text}'` };
    const value = Number(`${whole || '0'}.${frac || '0'}`);
    total += value * (UNIT_MS[m[3] ?? ''] ?? Number.NaN);
    s = s.slice(m[0].length);
  }
  if (!Number.isFinite(total) || total > Number.MAX_SAFE_INTEGER) return { error: `duration '${text}' is too large` };
  const ms = Math.round(total);
  if (ms === 0 && total > 0) return { error: `duration '${text}' is below the 1ms resolution lstream uses` };
  return { ms: sign * ms };
}
