/** Start every emulator at once; the ones not installed come back undefined (or throw under REQUIRE_EMULATORS=1). */
import { startAzurite } from "./azurite.js";
import { startFakeGcs } from "./fakegcs.js";
import { startMinio } from "./minio.js";
import type { Emulator } from "./types.js";

export interface Services {
  s3?: Emulator;
  gs?: Emulator;
  az?: Emulator;
  /** Every running emulator's environment, merged: what a CLI run needs to reach them all. */
  env: Record<string, string>;
  stop(): Promise<void>;
}

export async function startServices(which: ("s3" | "gs" | "az")[] = ["s3", "gs", "az"]): Promise<Services> {
  const [s3, gs, az] = await Promise.all([
    which.includes("s3") ? startMinio() : undefined,
    which.includes("gs") ? startFakeGcs() : undefined,
    which.includes("az") ? startAzurite() : undefined,
  ]);
  const env = Object.assign({}, s3?.env, gs?.env, az?.env);
  return {
    s3,
    gs,
    az,
    env,
    async stop() {
      await Promise.all([s3?.stop(), gs?.stop(), az?.stop()]);
    },
  };
}
