import { InvalidArgumentError } from '@ls/core';

/**
 * Splits a command line into words the way a POSIX shell would for simple commands: whitespace
 * separates words; single quotes keep everything literal; double quotes keep spaces and honour
 * backslash escapes; a backslash outside quotes escapes the next character. No expansion is done.
 * Throws InvalidArgumentError for an unterminated quote or a line without words.
 */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let cur = '';
  let inWord = false;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote === "'") {
      if (c === "'") quote = undefined;
      else cur += c;
    } else if (quote === '"') {
      if (c === '"') quote = undefined;
      else if (c === '\\' && i + 1 < line.length && '"\\$`'.includes(line[i + 1]!)) cur += line[++i];
      else cur += c;
    } else if (c === "'" || c === '"') {
      quote = c;
      inWord = true;
    } else if (c === '\\' && i + 1 < line.length) {
      cur += line[++i];
      inWord = true;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(cur);
      cur = '';
      inWord = false;
    } else {
      cur += c;
      inWord = true;
    }
  }
  if (quote) throw new InvalidArgumentError(`exec: unterminated ${quote} quote in '${line}'`);
  if (inWord) words.push(cur);
  if (words.length === 0) throw new InvalidArgumentError('exec: empty command; give the command line to run');
  return words;
}
