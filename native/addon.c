/*
 * The fsnative addon: dropCached (fadvise.c), copySmallFiles (copy-files.c), listDir
 * (list-dir.c) and readSmallFiles (read-files.c) on Linux; elsewhere the filesystem adapter does
 * without them. And md5x4 (md5-x4.c) on x86-64, md5x8 (md5-x8.c) where the CPU has AVX2;
 * elsewhere md5-lanes.ts keeps its WebAssembly.
 * Plain Node-API in C, context-aware so file threads load it too.
 */
#include "fs-native.h"

NAPI_MODULE_INIT() {
#if defined(__linux__)
  const napi_property_descriptor functions[] = {
      {"dropCached", NULL, DropCached, NULL, NULL, NULL, napi_enumerable, NULL},
      {"copySmallFiles", NULL, CopySmallFiles, NULL, NULL, NULL, napi_enumerable, NULL},
      {"listDir", NULL, ListDir, NULL, NULL, NULL, napi_enumerable, NULL},
      {"readSmallFiles", NULL, ReadSmallFiles, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions);
#endif
#if defined(__x86_64__)
  const napi_property_descriptor md5[] = {{"md5x4", NULL, Md5X4, NULL, NULL, NULL, napi_enumerable, NULL},
                                         {"md5x8", NULL, Md5X8, NULL, NULL, NULL, napi_enumerable, NULL}};
  napi_define_properties(env, exports, md5x8_supported() ? 2 : 1, md5);
#endif
  return exports;
}
