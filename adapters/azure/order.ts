/**
 * Listing order repair: Azure (and Azurite) list blob names in UTF-16 code-unit order; the
 * engine needs code-point order (= UTF-8 byte order). The two differ in one way only: a
 * character above U+FFFF (a surrogate pair, D800–DFFF) sorts *before* U+E000–U+FFFF in
 * UTF-16, *after* it by code point. Everything else already agrees.
 *
 * In bounded memory: while streaming the listing of `prefix`, the first time a name has a
 * surrogate pair at position i (after the prefix), the block of names sharing Q = name[0..i)
 * followed by a surrogate pair is contiguous and comes first among Q's U+E000–U+FFFF names.
 * We skip that block (remembering only which astral characters c started it), yield the rest of
 * Q's names, and when the stream leaves Q, list each Q + c again — recursively, since those
 * names may hold further astral characters — and yield them. Memory: the distinct astral
 * characters per nesting level. Cost: names with astral characters are listed once more per
 * astral character they hold; names without any are listed once.
 */

export type RawLister<T> = (prefix: string) => AsyncIterable<T>;

function isHigh(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function firstHigh(s: string, from: number): number {
  for (let i = from; i < s.length; i++) if (isHigh(s.charCodeAt(i))) return i;
  return -1;
}

interface Deferral {
  /** Common prefix of the skipped block. */
  q: string;
  /** The surrogate pairs that follow q in the skipped block, in order. */
  chars: string[];
}

/** The listing of `prefix` by `list` (UTF-16 order), re-ordered into code-point order. */
export async function* inCodePointOrder<T>(list: RawLister<T>, nameOf: (item: T) => string, prefix: string): AsyncGenerator<T> {
  const stack: Deferral[] = [];
  async function* flush(d: Deferral): AsyncGenerator<T> {
    for (const c of d.chars) yield* inCodePointOrder(list, nameOf, d.q + c);
  }
  for await (const item of list(prefix)) {
    const name = nameOf(item);
    while (stack.length && !name.startsWith(stack[stack.length - 1].q)) yield* flush(stack.pop() as Deferral);
    const top = stack.at(-1);
    if (top && isHigh(name.charCodeAt(top.q.length))) {
      const c = name.slice(top.q.length, top.q.length + 2);
      if (top.chars.at(-1) !== c) top.chars.push(c);
      continue;
    }
    const i = firstHigh(name, top ? top.q.length + 1 : prefix.length);
    if (i < 0) {
      yield item;
      continue;
    }
    stack.push({ q: name.slice(0, i), chars: [name.slice(i, i + 2)] });
  }
  while (stack.length) yield* flush(stack.pop() as Deferral);
}
