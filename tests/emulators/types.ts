import type { AdapterOptions } from "../../adapters/types.js";

/** A running emulator, started on a free loopback port by the tests. */
export interface Emulator {
  /** "s3" | "gs" | "az" */
  readonly scheme: string;
  readonly name: string;
  /** Environment that points the service's SDK at the emulator (credentials, endpoint). */
  readonly env: Record<string, string>;
  /** The same, but with a credential the emulator rejects. */
  readonly badCredentialsEnv: Record<string, string>;
  readonly adapterOptions: AdapterOptions;
  /** The server's process id (the benchmark reads its CPU time). */
  readonly pid?: number;
  /** Create a new, empty bucket/container; returns its URL root, e.g. "s3://b-1a2b". */
  createBucket(): Promise<string>;
  /** A URL for a bucket that does not exist. */
  missingBucketUrl(): string;
  stop(): Promise<void>;
}
