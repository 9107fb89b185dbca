/**
 * Worker thread for hashing big buffers off the main thread. Part buffers are backed by
 * SharedArrayBuffer, so they reach the worker without a copy.
 */
import { createMD5, type IHasher } from "hash-wasm";
import { serve, type Handled } from "./worker-pool.js";
import { md5Hex } from "./hashing.js";

let chain: IHasher | undefined;

/** The whole-object hasher, at a saved state (none: the start). */
async function at(state: Uint8Array | undefined): Promise<IHasher> {
  chain ??= await createMD5();
  if (state) chain.load(state);
  else chain.init();
  return chain;
}

serve({
  md5: (data: Uint8Array): Handled => ({ value: md5Hex(data) }),
  /** Continue a whole-object MD5 from a saved state over `data`; the new state. */
  async md5Continue(state: Uint8Array | undefined, data: Uint8Array): Promise<Handled> {
    const h = await at(state);
    h.update(data);
    return { value: h.save() };
  },
  md5Finish: async (state: Uint8Array | undefined): Promise<Handled> => ({ value: (await at(state)).digest("hex") }),
});
