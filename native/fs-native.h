/* The fsnative addon's functions (native/addon.c registers them) and shared helpers. */
#ifndef CLOUDMIGRATE_FS_NATIVE_H
#define CLOUDMIGRATE_FS_NATIVE_H
#include <node_api.h>
#include <stdint.h>
#if defined(__x86_64__)
napi_value Md5X4(napi_env env, napi_callback_info info);
napi_value Md5X8(napi_env env, napi_callback_info info);
/** Whether this CPU runs md5x8 (AVX2). */
int md5x8_supported(void);
/** A multi-lane MD5 block function: `state` holds A, B, C, D of every lane (word × lanes + lane). */
typedef void (*md5_lanes_fn)(uint32_t *state, const uint8_t *const *in, size_t blocks);
/**
 * md5x4 and md5x8's JavaScript call (state, p0, …, p<lanes-1>, blocks[, plain]): checks the
 * arguments (throwing on bad ones), then runs `avx512` where the CPU has AVX-512VL and `plain`
 * was not asked, else `plain`, over the lanes.
 */
napi_value fsn_md5_lanes_call(napi_env env, napi_callback_info info, int lanes, md5_lanes_fn avx512, md5_lanes_fn plain);
#endif
#if defined(__linux__)
napi_value DropCached(napi_env env, napi_callback_info info);
napi_value CopySmallFiles(napi_env env, napi_callback_info info);
napi_value ListDir(napi_env env, napi_callback_info info);
napi_value ReadSmallFiles(napi_env env, napi_callback_info info);

/** A malloc'd UTF-8 copy of the JavaScript string `v`, or NULL. */
char *fsn_copy_string(napi_env env, napi_value v);
/**
 * An Error shaped as Node's fs errors: message "CODE: description, syscall 'path' -> 'dest'",
 * code, errno (negative), syscall, path and dest where given. `err` is a positive errno.
 */
napi_value fsn_fs_error(napi_env env, int err, const char *syscall, const char *path, const char *dest);
/** Reject `deferred` with an Error of `message`. */
void fsn_reject(napi_env env, napi_deferred deferred, const char *message);
/**
 * The head of a batch of per-file work whose Promise settles as an array (the first member of
 * such a batch): element(env, batch, i) gives entry i of n; discard frees the batch.
 */
typedef struct fsn_batch {
  napi_async_work work;
  napi_deferred deferred;
  uint32_t n;
  napi_value (*element)(napi_env env, void *batch, uint32_t i);
  void (*discard)(void *batch);
} fsn_batch;
/**
 * Queue `execute` (pool thread) on the batch; then, on the JavaScript thread, resolve its Promise
 * with its n elements (rejected when the work did not run) and discard it.
 */
napi_value fsn_queue_batch(napi_env env, fsn_batch *batch, const char *name, napi_async_execute_callback execute);
/**
 * Queue `execute` (pool thread) then `complete` (JavaScript thread) on `data`; the Promise that
 * `complete` settles through *deferred. When it cannot be queued: the Promise rejected and
 * discard(data) called.
 */
napi_value fsn_queue(napi_env env, void *data, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete,
                     napi_async_work *work, napi_deferred *deferred, void (*discard)(void *));
#endif
#endif
