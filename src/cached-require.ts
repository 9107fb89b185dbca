/**
 * Load a CommonJS bundle with V8's code cache for it, so its functions are deserialized rather
 * than parsed and compiled on every start. Node 20 has no compile cache of its own
 * (module.enableCompileCache arrived in Node 22): without this, every run that touches S3 spent
 * ~35 ms compiling the AWS SDK before its first request.
 *
 * Contract:
 * - The cache lives beside the bundle, one per V8 version and architecture
 *   (codeCacheFile()), and is written only by writeCodeCache(): the build does it (see
 *   scripts/bundle.mjs). Loading never writes.
 * - Without a cache for this Node, requireCached() loads nothing and says so: the caller
 *   require()s the modules the usual way, where Node 22's own compile cache applies.
 * - V8 checks the cache against the source and its flags too. One it refuses (other flags,
 *   damaged) only costs the compile it would have saved: the bundle is compiled from source.
 * - The bundle runs as require() would run it: module wrapper, `require` resolving from the
 *   bundle's folder, and `import()` through Node's own loader.
 */
import fs from "node:fs";
import { createRequire, Module } from "node:module";
import path from "node:path";
import vm from "node:vm";

/** Where the code cache of `file` for this V8 and architecture lives. */
export const codeCacheFile = (file: string): string => `${file}.${process.arch}-v8-${process.versions.v8}.cache`;

export interface CachedLoad {
  exports: unknown;
  /** Whether V8 took the cache (false: compiled from source). */
  cacheUsed: boolean;
}

type ModuleWrapper = (exports: unknown, require: NodeJS.Require, module: { exports: unknown }, filename: string, dirname: string) => void;

// Node's main-context loader for `import()` inside the script (Node ≥ 20.12); before that, a callback doing the same.
// (Typed as a number by @types/node; at run time it is a symbol, which the option takes.)
const dynamicImport = vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER ?? ((specifier: string) => import(specifier));

function compile(file: string, cachedData?: Buffer): vm.Script {
  // Module.wrap exists at run time but is missing from @types/node's Module typings.
  const wrap = (Module as unknown as { wrap(source: string): string }).wrap;
  return new vm.Script(wrap(fs.readFileSync(file, "utf8")), {
    filename: file,
    cachedData,
    importModuleDynamically: dynamicImport,
  });
}

function run(script: vm.Script, file: string): unknown {
  const wrapper = script.runInThisContext() as ModuleWrapper;
  const module = { exports: {} as unknown };
  wrapper.call(module.exports, module.exports, createRequire(file), module, file, path.dirname(file));
  return module.exports;
}

/**
 * Run the bundle at `file` once, compiled from its code cache; undefined (nothing run) if there
 * is no cache for this Node.
 */
export function requireCached(file: string): CachedLoad | undefined {
  let cachedData: Buffer;
  try {
    cachedData = fs.readFileSync(codeCacheFile(file));
  } catch {
    return undefined;
  }
  const script = compile(file, cachedData);
  return { exports: run(script, file), cacheUsed: script.cachedDataRejected !== true };
}

/**
 * Compile and run the bundle, let `exercise` call into it (what it runs is compiled by then and
 * goes into the cache too), then write its code cache for this Node (codeCacheFile()). Returns
 * the cache's size in bytes.
 */
export async function writeCodeCache(file: string, exercise: (exports: unknown) => Promise<void> | void = () => {}): Promise<number> {
  const script = compile(file);
  await exercise(run(script, file));
  const data = script.createCachedData();
  const target = codeCacheFile(file);
  const tmp = `${target}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, data);
  fs.renameSync(tmp, target);
  return data.length;
}
