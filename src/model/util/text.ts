/** Text for one-line error messages: whatever the input held, a message stays one line. */

const QUOTE_MAX_CHARS = 40;

/** C0 controls, DEL and C1 controls. */
export function isControl(code: number): boolean {
  return code < 0x20 || (code >= 0x7f && code <= 0x9f);
}

/** Error lines must stay one line whatever the input held (JSON.parse quotes raw text). */
export function oneLine(s: string): string {
  let out = '';
  for (const c of s) {
    const code = c.codePointAt(0) ?? 0;
    const breaks = isControl(code) || code === 0x2028 || code === 0x2029;
    out += breaks ? `\\u${code.toString(16).padStart(4, '0')}` : c;
  }
  return out;
}

/** A string as a short JSON literal for messages (long user strings are cut). */
export function quote(s: string): string {
  const chars = Array.from(s.slice(0, QUOTE_MAX_CHARS * 2));
  const cut = chars.length > QUOTE_MAX_CHARS || s.length > QUOTE_MAX_CHARS * 2;
  return oneLine(JSON.stringify(chars.slice(0, QUOTE_MAX_CHARS).join(''))) + (cut ? '…' : '');
}
