// Auth layer: libvirt's allow-lists (tls_allowed_dn_list, sasl_allowed_username_list): an unset
// list admits everyone, an empty one nobody, otherwise a whole-string glob match as GLib's
// g_pattern_match_simple does it ('*' any run including none, '?' one character, no escapes).

/** True when `text` matches the glob `pattern` as a whole. */
export function globMatch(pattern: string, text: string): boolean {
  const p = [...pattern];
  const t = [...text];
  let pi = 0;
  let ti = 0;
  let starP = -1;
  let starT = 0;
  while (ti < t.length) {
    const pc = p[pi];
    if (pc === '*') {
      starP = pi++;
      starT = ti;
    } else if (pc !== undefined && (pc === '?' || pc === t[ti])) {
      pi++;
      ti++;
    } else if (starP >= 0) {
      // Let the last '*' swallow one more character and retry from there.
      pi = starP + 1;
      ti = ++starT;
    } else {
      return false;
    }
  }
  while (p[pi] === '*') pi++;
  return pi === p.length;
}

/** The allow-list decision: null list = no list configured. */
export function allowListPermits(list: readonly string[] | null, name: string): boolean {
  if (list === null) return true;
  return list.some((pattern) => globMatch(pattern, name));
}
