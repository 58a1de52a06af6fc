import { describe, expect, it } from 'vitest';
import { expandEnv } from './expand-env.js';

const env = { A: 'alpha', B_2: 'beta', EMPTY: '', ML: 'x\ny' };

describe('expandEnv', () => {
  it('expands $VAR and ${VAR} like Go os.ExpandEnv', () => {
    expect(expandEnv('$A ${B_2} ${A}x $A_suffix', env).text).toBe('alpha beta alphax ');
    expect(expandEnv('pre-$A-post', env).text).toBe('pre-alpha-post');
    expect(expandEnv('$UNSET|${UNSET}|$EMPTY', env).text).toBe('||');
  });

  it('keeps a $ that starts no name and drops malformed ${ sequences', () => {
    expect(expandEnv('cost: 5$ and $ and $%', env).text).toBe('cost: 5$ and $ and $%');
    expect(expandEnv('trailing $', env).text).toBe('trailing $');
    expect(expandEnv('a${}b', env).text).toBe('ab');
    expect(expandEnv('a${unterminated', env).text).toBe('aunterminated');
  });

  it('treats shell special names as variables ($$, $1, ${*})', () => {
    expect(expandEnv('p$$w$1d${*}', { $: 'X', 1: 'Y', '*': 'Z' }).text).toBe('pXwYdZ');
    expect(expandEnv('pa$$word', {}).text).toBe('paword');
  });

  it('maps output lines back to input lines when a value holds newlines', () => {
    expect(expandEnv('a: 1\nb: 2\n', env).lineMap).toBeUndefined();
    const r = expandEnv('a: $ML\nb: 2\nc: $ML\nd: 4', env);
    expect(r.text).toBe('a: x\ny\nb: 2\nc: x\ny\nd: 4');
    expect(r.lineMap).toEqual([1, 1, 2, 3, 3, 4]);
  });
});
