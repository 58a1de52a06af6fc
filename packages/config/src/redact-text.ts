/** What credentials are replaced with. */
const MASK = '***';

/**
 * `scheme://user:password@host`: the user info of a URL. The password may hold '/' (AWS secret keys
 * often do; such a URL does not parse, and gets quoted whole in errors about it).
 */
const URL_USERINFO = /\b([a-z][a-z0-9+.-]*:\/\/)[^\s/@:]+:[^\s@]*@/gi;
/** Signed-URL and form parameters that carry credentials. */
const SECRET_PARAM = /\b(X-Amz-Signature|X-Amz-Credential|X-Amz-Security-Token|Signature|AWSAccessKeyId|access_token|token|password|secret)=[^\s&"']+/gi;
/** `Authorization: Bearer …` and the like. */
const AUTH_HEADER = /\b(Bearer|Basic|AWS4-HMAC-SHA256)\s+[^\s"']+/g;

/**
 * Returns `text` (an error message, typically) with credentials replaced by `***`: every value in
 * `secrets` (the configured keys and tokens), the user info of URLs, signed-URL parameters and
 * authorization headers. Secrets shorter than 4 characters are not searched for, so a one-letter
 * "secret" cannot mangle every message.
 */
export function redactText(text: string, secrets: Iterable<string | undefined> = []): string {
  let out = text;
  for (const s of secrets) {
    if (s !== undefined && s.length >= 4) out = out.split(s).join(MASK);
  }
  return out
    .replace(URL_USERINFO, `$1${MASK}@`)
    .replace(SECRET_PARAM, `$1=${MASK}`)
    .replace(AUTH_HEADER, `$1 ${MASK}`);
}
