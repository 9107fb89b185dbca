/**
 * The hashing thread: every MD5 asked of it shares md5-lanes.ts's SIMD lanes with the others in
 * flight. Part buffers are backed by SharedArrayBuffer, so they reach it without a copy.
 */
import { parentPort } from "node:worker_threads";
import { Md5Lanes, decodeMd5State, encodeMd5State, freshMd5State, type Md5State } from "./md5-lanes.js";
import { toErrorShape } from "./worker-pool.js";
import type { HashReply, HashRequest } from "./hash-thread.js";

const lanes = new Md5Lanes();
const port = parentPort!;
/** Md5Feed streams under way: each piece advances the state after the one before. */
const streams = new Map<number, { state: Promise<Md5State>; bytes: number }>();

/**
 * Advance `stream` over `data`, which must follow its `from` bytes taken so far. A stream
 * that does not (its earlier pieces went to a thread that has since died) fails at its end.
 */
function feed(stream: number, from: number, data: Uint8Array): Promise<Md5State> {
  const s = streams.get(stream) ?? { state: Promise.resolve(freshMd5State()), bytes: 0 };
  s.state =
    s.bytes === from
      ? s.state.then((state) => lanes.update(state, data))
      : Promise.reject(new Error(`MD5 stream ${stream}: a piece from byte ${from} after ${s.bytes} bytes (the hashing thread restarted)`));
  s.bytes = from + data.length;
  streams.set(stream, s);
  return s.state;
}

function stateOf(bytes: Uint8Array | undefined) {
  if (!bytes) return freshMd5State();
  const state = decodeMd5State(bytes);
  if (!state) throw new Error("not an MD5 state saved by this version");
  return state;
}

async function answer(r: HashRequest): Promise<unknown> {
  switch (r.op) {
    case "md5":
      return lanes.md5(r.data);
    case "continue":
      return encodeMd5State(await lanes.update(stateOf(r.state), r.data));
    case "finish":
      return lanes.finish(stateOf(r.state));
    case "end": {
      try {
        return lanes.finish(await feed(r.stream, r.from, r.data));
      } finally {
        streams.delete(r.stream);
      }
    }
  }
}

port.on("message", (r: HashRequest) => {
  if (r.seq === undefined) {
    if (r.op === "feed") feed(r.stream, r.from, r.data).catch(() => undefined); // its end reports a failure
    else streams.delete(r.stream);
    return;
  }
  answer(r).then(
    (value) => port.postMessage({ seq: r.seq, ok: true, value } satisfies HashReply),
    (err: unknown) => port.postMessage({ seq: r.seq, ok: false, error: toErrorShape(err) } satisfies HashReply),
  );
});

port.postMessage({ ready: true } satisfies HashReply);
