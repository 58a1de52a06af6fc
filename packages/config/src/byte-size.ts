const UNITS: Record<string, number> = {
  b: 1,
  kb: 1e3,
  mb: 1e6,
  gb: 1e9,
  tb: 1e12,
  kib: 1024,
  mib: 1024 ** 2,
  gib: 1024 ** 3,
  tib: 1024 ** 4,
};

/**
 * Parses a byte size: an integer, or a number with a unit — `B`, SI `KB`/`MB`/`GB`/`TB` (powers of
 * 1000) or IEC `KiB`/`MiB`/`GiB`/`TiB` (powers of 1024), case-insensitive. Fractions round down.
 */
export function parseByteSize(text: string): { bytes: number } | { error: string } {
  const m = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(text.trim());
  if (!m) return { error: `invalid size '${text}'` };
  const unit = (m[2] ?? '').toLowerCase();
  const factor = unit === '' ? 1 : UNITS[unit];
  if (factor === undefined) return { error: `unknown size unit '${m[2] ?? ''}' in '${text}'` };
  const bytes = Math.floor(Number(m[1]) * factor);
  if (!Number.isSafeInteger(bytes)) return { error: `size '${text}' is too large` };
  return { bytes };
}
