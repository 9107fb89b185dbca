import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { inItsFolder } from "../../adapters/fs-folders.js";

const enoent = (): NodeJS.ErrnoException => Object.assign(new Error("ENOENT: no such file or directory"), { code: "ENOENT" });

describe("making a file's folder when creating the file finds it missing", () => {
  let root = "";
  afterEach(() => {
    if (root) fs.rmSync(root, { recursive: true, force: true });
  });
  const scratch = () => (root = fs.mkdtempSync(path.join(os.tmpdir(), "cm-fs-folders-")));

  it("makes the folder and creates the file", () => {
    const file = path.join(scratch(), "a", "b", "f");
    inItsFolder(file, () => fs.writeFileSync(file, "x"));
    expect(fs.readFileSync(file, "utf8")).toBe("x");
  });

  it("tries again when another thread made the folder after the first try failed", () => {
    const file = path.join(scratch(), "a", "b", "f");
    let tries = 0;
    const got = inItsFolder(file, () => {
      if (++tries === 1) {
        fs.mkdirSync(path.dirname(file), { recursive: true }); // the other thread, in between
        throw enoent();
      }
      fs.writeFileSync(file, "y");
      return tries;
    });
    expect(got).toBe(2);
    expect(fs.readFileSync(file, "utf8")).toBe("y");
  });

  it("makes no folder, and passes the error on, when ENOENT has another cause", () => {
    const file = path.join(scratch(), "a", "f");
    expect(() =>
      inItsFolder(
        file,
        () => {
          throw enoent();
        },
        () => true,
      ),
    ).toThrow(/ENOENT/);
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });

  it("passes other errors on untouched", () => {
    const file = path.join(scratch(), "a", "f");
    const denied = Object.assign(new Error("EACCES: permission denied"), { code: "EACCES" });
    expect(() =>
      inItsFolder(file, () => {
        throw denied;
      }),
    ).toThrow(denied);
    expect(fs.existsSync(path.dirname(file))).toBe(false);
  });
});
