import { describe, expect, it } from "vitest";
import { backoffDelay, withRetry } from "../../src/retry.js";
import { MigrateError, afterFailedCheck, toMigrateError } from "../../src/errors.js";

const policy = { attempts: 4, baseDelayMs: 1, maxDelayMs: 5 };

describe("retry", () => {
  it("retries temporary errors only, up to the attempt limit", async () => {
    let calls = 0;
    await expect(
      withRetry(policy, async () => {
        calls++;
        throw new MigrateError("RateLimited", "slow down");
      }),
    ).rejects.toThrow("slow down");
    expect(calls).toBe(4);

    calls = 0;
    await expect(
      withRetry(policy, async () => {
        calls++;
        throw new MigrateError("PermissionDenied", "no");
      }),
    ).rejects.toThrow("no");
    expect(calls).toBe(1);

    calls = 0;
    expect(await withRetry(policy, async () => (++calls < 3 ? Promise.reject(Object.assign(new Error("reset"), { code: "ECONNRESET" })) : "ok"))).toBe("ok");
    expect(calls).toBe(3);
  });

  it("full jitter stays under the exponential ceiling; Retry-After wins when longer", () => {
    const p = { attempts: 5, baseDelayMs: 100, maxDelayMs: 1000 };
    for (let a = 0; a < 6; a++) expect(backoffDelay(p, a, undefined, () => 0.999)).toBeLessThan(Math.min(1000, 100 * 2 ** a));
    expect(backoffDelay(p, 0, undefined, () => 0)).toBe(0);
    expect(backoffDelay(p, 0, new MigrateError("RateLimited", "x", { retryAfterMs: 3000 }), () => 0.5)).toBe(3000);
  });

  it("maps network and filesystem errors to kinds", () => {
    expect(toMigrateError(Object.assign(new Error("x"), { code: "ECONNRESET" }))).toMatchObject({ kind: "Unexpected", temporary: true });
    expect(toMigrateError(Object.assign(new Error("x"), { code: "EACCES" }))).toMatchObject({ kind: "PermissionDenied", temporary: false });
    expect(toMigrateError(Object.assign(new Error("x"), { code: "ENOENT" }))).toMatchObject({ kind: "NotFound" });
  });

  it("after a failed follow-up check, throws the check's temporary error unless the first asks a longer wait", () => {
    const gone = new MigrateError("NotFound", "no such upload");
    const throttled = new MigrateError("RateLimited", "slow down", { retryAfterMs: 1000 });
    const denied = new MigrateError("PermissionDenied", "no HEAD for you");
    expect(afterFailedCheck(gone, throttled)).toBe(throttled);
    expect(afterFailedCheck(gone, denied)).toBe(gone);
    const longer = new MigrateError("RateLimited", "slow down more", { retryAfterMs: 5000 });
    expect(afterFailedCheck(longer, throttled)).toBe(longer);
    expect(afterFailedCheck(throttled, longer)).toBe(longer);
  });
});
