/**
 * Worker thread for hashing big buffers off the main thread. Part buffers are backed by
 * SharedArrayBuffer, so they reach the worker without a copy.
 */
import crypto from "node:crypto";
import { createMD5, type IHasher } from "hash-wasm";
import { serve, type Handled } from "./worker-pool.js";

let chain: IHasher | undefined;

serve({
  md5(data: Uint8Array): Handled {
    return { value: crypto.createHash("md5").update(data).digest("hex") };
  },
  /** Continue a whole-object MD5 from a saved state (none: start) over `data`; the new state. */
  async md5Continue(state: Uint8Array | undefined, data: Uint8Array): Promise<Handled> {
    chain ??= await createMD5();
    if (state) chain.load(state);
    else chain.init();
    chain.update(data);
    return { value: chain.save() };
  },
  async md5Finish(state: Uint8Array | undefined): Promise<Handled> {
    chain ??= await createMD5();
    if (state) chain.load(state);
    else chain.init();
    return { value: chain.digest("hex") };
  },
});
