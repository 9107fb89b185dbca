import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["tests/**/*.test.ts"],
    setupFiles: ["tests/helpers/temp-cleanup.ts"],
    testTimeout: 60_000,
    hookTimeout: 120_000,
    // Emulators and CLI runs are heavy on a 2-core machine: a few files at a time.
    maxWorkers: 2,
    reporters: ["default"],
  },
});
