/** Holds the result of `expandEnv`. */
export interface ExpandedText {
  text: string;
  /**
   * For each line of `text` (index 0 is line 1), the 1-based line of the input it came from. Only
   * set when a substituted value contained a newline; otherwise lines match one to one.
   */
  lineMap?: number[];
}

const SPECIAL = new Set(['*', '#', '$', '@', '!', '?', '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);

function isAlphaNum(c: string | undefined): boolean {
  return c !== undefined && /^[A-Za-z0-9_]$/.test(c);
}

/** Go's os.getShellName: the variable name after a `$` and how many characters it spans. */
function shellName(s: string): [name: string, width: number] {
  if (s[0] === '{') {
    if (s.length > 2 && SPECIAL.has(s[1] ?? '') && s[2] === '}') return [s.slice(1, 2), 3];
    for (let i = 1; i < s.length; i++) {
      if (s[i] === '}') {
        if (i === 1) return ['', 2]; // bad syntax: eat "${}"
        return [s.slice(1, i), i + 1];
      }
    }
    return ['', 1]; // bad syntax: eat "${"
  }
  if (SPECIAL.has(s[0] ?? '')) return [s.slice(0, 1), 1];
  let i = 0;
  while (i < s.length && isAlphaNum(s[i])) i++;
  return [s.slice(0, i), i];
}

/**
 * Replaces `$VAR` and `${VAR}` in `text` with values from `env`, exactly as Go's `os.ExpandEnv`
 * (which Litestream applies to its config file): unset variables become empty, `$` before anything
 * that is not a name stays, and malformed `${` sequences are dropped.
 */
export function expandEnv(text: string, env: Record<string, string | undefined>): ExpandedText {
  let out = '';
  let last = 0;
  let multiline = false;
  const pieces: { text: string; substituted: boolean }[] = [];
  for (let j = 0; j < text.length; j++) {
    if (text[j] !== '$' || j + 1 >= text.length) continue;
    pieces.push({ text: text.slice(last, j), substituted: false });
    const [name, w] = shellName(text.slice(j + 1));
    if (name === '' && w > 0) {
      // Invalid syntax: the characters are eaten.
    } else if (name === '') {
      pieces.push({ text: '$', substituted: false });
    } else {
      const value = env[name] ?? '';
      if (value.includes('\n')) multiline = true;
      pieces.push({ text: value, substituted: true });
    }
    j += w;
    last = j + 1;
  }
  if (pieces.length === 0) return { text };
  pieces.push({ text: text.slice(last), substituted: false });
  for (const p of pieces) out += p.text;
  if (!multiline) return { text: out };

  const lineMap = [1];
  let inLine = 1;
  for (const p of pieces) {
    for (const c of p.text) {
      if (c !== '\n') continue;
      if (!p.substituted) inLine++;
      lineMap.push(inLine);
    }
  }
  return { text: out, lineMap };
}
