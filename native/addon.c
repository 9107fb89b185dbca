/*
 * The fsnative addon: dropCached (fadvise.c), copySmallFiles (copy-files.c), listDir
 * (list-dir.c) and readSmallFiles (read-files.c) on Linux; elsewhere it exports nothing and the
 * filesystem adapter does without.
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
  return exports;
}
