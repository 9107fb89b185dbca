/**
 * Scratch folders for tests, removed when the test file ends (tests/helpers/temp-cleanup.ts, a
 * setup file): a full run writes over a gigabyte of them. KEEP_TEST_DIRS=1 keeps them to look at.
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";

const made: string[] = [];

/** A new empty folder under the system's temporary folder, named cm-<tag>-…. */
export function tempDir(tag: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `cm-${tag}-`));
  made.push(dir);
  return dir;
}

/** Remove every folder tempDir made in this test file; one left behind is named on stderr. */
export function removeTempDirs(): void {
  if (process.env.KEEP_TEST_DIRS === "1") return;
  for (const dir of made.splice(0)) {
    try {
      fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
    } catch {
      // A test may leave a folder read-only (not a hindrance to root, but to anyone else).
      try {
        makeWritable(dir);
        fs.rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
      } catch (err) {
        process.stderr.write(`test scratch folder left behind: ${dir} (${(err as Error).message})\n`);
      }
    }
  }
}

function makeWritable(dir: string): void {
  fs.chmodSync(dir, 0o700);
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) makeWritable(path.join(dir, e.name));
}
