/**
 * rclone remotes pointed at the emulators, defined through RCLONE_CONFIG_<NAME>_* environment
 * variables (secrets stay off the command line) with an empty config file.
 *
 * Tested with rclone 1.60:
 * - MinIO: type s3, provider Minio, endpoint, static keys.
 * - fake-gcs-server: type gcs, endpoint http://HOST:PORT/storage/v1/, anonymous.
 * - Azurite: type azureblob with a container SAS URL (use_emulator hangs in 1.60).
 */
import { execFileSync } from "node:child_process";

const RCLONE = "rclone";

/** An rclone remote: its env vars and the "NAME:path" spec to use on the command line. */
export interface RcloneRemote {
  env: Record<string, string>;
  spec: string;
}

function remote(name: string, settings: Record<string, string>, path: string): RcloneRemote {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(settings)) env[`RCLONE_CONFIG_${name.toUpperCase()}_${k.toUpperCase()}`] = v;
  return { env, spec: `${name}:${path}` };
}

export function localRemote(dir: string): RcloneRemote {
  return { env: {}, spec: dir };
}

/** `bucketPath` is "bucket" or "bucket/prefix". */
export function s3Remote(name: string, emuEnv: Record<string, string>, bucketPath: string): RcloneRemote {
  return remote(
    name,
    {
      type: "s3",
      provider: "Minio",
      endpoint: emuEnv.AWS_ENDPOINT_URL,
      access_key_id: emuEnv.AWS_ACCESS_KEY_ID,
      secret_access_key: emuEnv.AWS_SECRET_ACCESS_KEY,
      region: emuEnv.AWS_REGION ?? "us-east-1",
    },
    bucketPath,
  );
}

export function gcsRemote(name: string, emuEnv: Record<string, string>, bucketPath: string): RcloneRemote {
  const host = emuEnv.STORAGE_EMULATOR_HOST.replace(/\/+$/, "");
  return remote(name, { type: "gcs", endpoint: `${host}/storage/v1/`, anonymous: "true" }, bucketPath);
}

/** `sasUrl` is a container SAS URL; `containerPath` is "container" or "container/prefix". */
export function azureRemote(name: string, sasUrl: string, containerPath: string): RcloneRemote {
  return remote(name, { type: "azureblob", sas_url: sasUrl }, containerPath);
}

/**
 * Environment for an rclone run: ours minus AWS_CA_BUNDLE (rclone would try to load it and the
 * emulators are plain http), no config file, plus the remotes' variables.
 */
export function rcloneEnv(...remotes: RcloneRemote[]): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, RCLONE_CONFIG: "/dev/null" };
  delete env.AWS_CA_BUNDLE;
  for (const r of remotes) Object.assign(env, r.env);
  return env;
}

/** `rclone copy` arguments with the given concurrency for transfers and checkers. */
export function rcloneCopyArgs(src: RcloneRemote, dst: RcloneRemote, concurrency: number): string[] {
  return ["copy", src.spec, dst.spec, "--transfers", String(concurrency), "--checkers", String(concurrency)];
}

export function rcloneVersion(): string | undefined {
  try {
    return execFileSync(RCLONE, ["version"], { encoding: "utf8", timeout: 10_000 }).split("\n")[0].trim();
  } catch {
    return undefined;
  }
}

export const rcloneBin = RCLONE;
