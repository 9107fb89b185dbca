/**
 * Listings a page at a time. Each object passed through an async iterator costs a few promises
 * and microtask turns; a page costs them once. A fast listing (a local walk) feeding the planner
 * through several such layers spent more of the main thread on them than on the objects.
 */
import type { Adapter, ObjectInfo } from "../adapters/types.js";

/** Objects per page when an adapter lists one object at a time. */
const GROUP = 1000;

/** `adapter`'s listing of `prefix` as pages: its own pages where it has them, else its objects grouped. */
export function listPagesOf(adapter: Adapter, prefix?: string): AsyncIterable<ObjectInfo[]> {
  return adapter.listPages ? adapter.listPages(prefix) : inGroups(adapter.list(prefix), GROUP);
}

const WAITING = Symbol("waiting");

/**
 * `items` in arrays of up to `size`, none empty. An array is handed on early when the next item
 * is not there within a timer turn: a listing that waits on the network holds nothing back.
 * At most one timer is pending, and nothing is attached to it per item: a listing that never
 * waits (all in memory) runs through without one piling up per group.
 */
export async function* inGroups<T>(items: AsyncIterable<T>, size: number): AsyncGenerator<T[]> {
  const it = items[Symbol.asyncIterator]();
  let group: T[] = [];
  let ticking = false; // a timer turn is scheduled
  let turned = false; // a timer turn passed since the group started (or about then)
  let wake: ((r: typeof WAITING) => void) | undefined;
  const tick = () => {
    ticking = false;
    turned = true;
    wake?.(WAITING);
  };
  // Awaited below, but perhaps only after a yield: not an unhandled rejection meanwhile.
  const pull = () => {
    const p = it.next();
    p.catch(() => undefined);
    return p;
  };
  let ended = false;
  try {
    let next = pull();
    for (;;) {
      let r: IteratorResult<T> | typeof WAITING;
      if (!group.length) r = await next;
      else if (turned) r = WAITING;
      else {
        if (!ticking) {
          ticking = true;
          setImmediate(tick);
        }
        const waiting = next;
        r = await new Promise<IteratorResult<T> | typeof WAITING>((resolve, reject) => {
          wake = resolve;
          waiting.then(resolve, reject);
        });
        wake = undefined;
      }
      if (r === WAITING) {
        // `next` is still on its way; what is here goes on now.
        yield group;
        group = [];
        turned = false;
        continue;
      }
      if (r.done) {
        ended = true;
        if (group.length) yield group;
        return;
      }
      if (!group.length) turned = false;
      group.push(r.value);
      next = pull();
      if (group.length >= size) {
        yield group;
        group = [];
      }
    }
  } finally {
    if (!ended) await it.return?.();
  }
}

/** The items of `pages`, one at a time: `list()` for an adapter that lists in pages. */
export async function* flatten<T>(pages: AsyncIterable<readonly T[]>): AsyncGenerator<T> {
  for await (const page of pages) yield* page;
}
