/**
 * Key ordering. Every service lists keys in ascending order of their UTF-8 bytes, which is
 * code-point order. JavaScript's `<` compares UTF-16 code units, which agrees except when one
 * side has a surrogate pair (U+10000 and up) and the other a char in U+E000–U+FFFF.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca === cb) continue;
    if (ca >= 0xd800 && cb >= 0xd800) {
      const pa = a.codePointAt(i) as number;
      const pb = b.codePointAt(i) as number;
      return pa < pb ? -1 : pa > pb ? 1 : 0;
    }
    return ca < cb ? -1 : 1;
  }
  return a.length - b.length;
}
