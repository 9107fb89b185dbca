/** Reading a stream into a buffer of known size. */
import type { ObjectStream } from "../adapters/types.js";
import { MigrateError } from "./errors.js";

/**
 * Fill `target` from `stream`; returns how many bytes came. More than fits is a temporary
 * Integrity error (`what` names the object); fewer is the caller's to judge.
 */
export async function fillFrom(stream: ObjectStream, target: Buffer, what: string): Promise<number> {
  const tooLong = () => new MigrateError("Integrity", `${what}: ranged read returned more than ${target.length} bytes`, { temporary: true });
  if (stream.whole) {
    stream.destroy();
    if (stream.whole.length > target.length) throw tooLong();
    return stream.whole.copy(target);
  }
  let got = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    if (got + chunk.length > target.length) {
      stream.destroy();
      throw tooLong();
    }
    chunk.copy(target, got);
    got += chunk.length;
  }
  return got;
}
