/**
 * Pull up to `depth` items ahead of the consumer, so two listings (or a listing and the work
 * behind it) overlap their waits. Memory is bounded by `depth`. Errors surface in order.
 */
export async function* readAhead<T>(source: AsyncIterable<T>, depth: number): AsyncGenerator<T> {
  const it = source[Symbol.asyncIterator]();
  const buf: T[] = [];
  let done = false;
  let error: unknown;
  let failed = false;
  let wake: (() => void) | undefined;
  let space: (() => void) | undefined;

  const pump = (async () => {
    try {
      for (;;) {
        while (buf.length >= depth) await new Promise<void>((r) => (space = r));
        const n = await it.next();
        if (n.done) break;
        buf.push(n.value);
        wake?.();
      }
    } catch (err) {
      error = err;
      failed = true;
    } finally {
      done = true;
      wake?.();
    }
  })();

  try {
    for (;;) {
      if (buf.length) {
        const v = buf.shift() as T;
        space?.();
        yield v;
        continue;
      }
      if (done) break;
      await new Promise<void>((r) => (wake = r));
      wake = undefined;
    }
    if (failed) throw error;
  } finally {
    if (!done) {
      done = true;
      space?.();
      await it.return?.();
    }
    await pump.catch(() => undefined);
  }
}
