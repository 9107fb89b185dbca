/*
 * dropCached(fd, offset, length): posix_fadvise(fd, offset, length, POSIX_FADV_DONTNEED), the
 * error number it gave (0: done); Linux only.
 * Nothing here throws: a call Node refuses (wrong arguments, an environment being torn down while
 * a thread exits) gives undefined, never a JavaScript exception or a fatal error.
 */
#include "fs-native.h"
#if defined(__linux__)
#include <fcntl.h>

napi_value DropCached(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd;
  int64_t offset, length;
  napi_value result = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) return NULL;
  if (napi_get_value_int32(env, argv[0], &fd) != napi_ok) return NULL;
  if (napi_get_value_int64(env, argv[1], &offset) != napi_ok) return NULL;
  if (napi_get_value_int64(env, argv[2], &length) != napi_ok) return NULL;
  int err = posix_fadvise(fd, (off_t)offset, (off_t)length, POSIX_FADV_DONTNEED);
  if (napi_create_int32(env, err, &result) != napi_ok) return NULL;
  return result;
}

#endif
