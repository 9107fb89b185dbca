import { expect } from "vitest";
import { MigrateError } from "../../src/errors.js";

/** The MigrateError a promise rejects with; fails the test if it resolves or throws anything else. */
export async function caught(p: Promise<unknown>): Promise<MigrateError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MigrateError);
    return err as MigrateError;
  }
  throw new Error("expected a rejection");
}
