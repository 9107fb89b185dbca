/**
 * The hashing thread: every MD5 asked of it shares md5-lanes.ts's SIMD lanes with the others in
 * flight. Part buffers are backed by SharedArrayBuffer, so they reach it without a copy.
 */
import { parentPort } from "node:worker_threads";
import { Md5Lanes, decodeMd5State, encodeMd5State, freshMd5State } from "./md5-lanes.js";
import { toErrorShape } from "./worker-pool.js";
import type { HashReply, HashRequest } from "./hash-pool.js";

const lanes = new Md5Lanes();
const port = parentPort!;

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
  }
}

port.on("message", (r: HashRequest) => {
  answer(r).then(
    (value) => port.postMessage({ seq: r.seq, ok: true, value } satisfies HashReply),
    (err: unknown) => port.postMessage({ seq: r.seq, ok: false, error: toErrorShape(err) } satisfies HashReply),
  );
});
