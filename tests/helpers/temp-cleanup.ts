/** Vitest setup file: each test file's scratch folders (tempDir) go when the file's tests end. */
import { afterAll } from "vitest";
import { removeTempDirs } from "./temp.js";

afterAll(removeTempDirs);
