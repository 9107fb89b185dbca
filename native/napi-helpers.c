/* Node-API helpers shared by the fsnative functions (declared in fs-native.h). */
#include "fs-native.h"
#if defined(__linux__)
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

char *fsn_copy_string(napi_env env, napi_value v) {
  size_t len;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (s && napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok) {
    free(s);
    return NULL;
  }
  return s;
}

static void set_string(napi_env env, napi_value obj, const char *key, const char *s) {
  napi_value v;
  if (s != NULL && napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &v) == napi_ok) napi_set_named_property(env, obj, key, v);
}

napi_value fsn_fs_error(napi_env env, int err, const char *syscall, const char *path, const char *dest) {
  const char *code = uv_err_name(-err);
  const char *desc = uv_strerror(-err);
  size_t len = strlen(code) + strlen(desc) + strlen(syscall) + (path ? strlen(path) : 0) + (dest ? strlen(dest) : 0) + 32;
  char *message = malloc(len);
  if (message) {
    if (path && dest) snprintf(message, len, "%s: %s, %s '%s' -> '%s'", code, desc, syscall, path, dest);
    else if (path) snprintf(message, len, "%s: %s, %s '%s'", code, desc, syscall, path);
    else snprintf(message, len, "%s: %s, %s", code, desc, syscall);
  }
  napi_value msg, error, v;
  napi_create_string_utf8(env, message ? message : code, NAPI_AUTO_LENGTH, &msg);
  free(message);
  napi_create_error(env, NULL, msg, &error);
  set_string(env, error, "code", code);
  napi_create_int32(env, -err, &v);
  napi_set_named_property(env, error, "errno", v);
  set_string(env, error, "syscall", syscall);
  set_string(env, error, "path", path);
  set_string(env, error, "dest", dest);
  return error;
}

void fsn_reject(napi_env env, napi_deferred deferred, const char *message) {
  napi_value msg, error;
  napi_create_string_utf8(env, message, NAPI_AUTO_LENGTH, &msg);
  napi_create_error(env, NULL, msg, &error);
  napi_reject_deferred(env, deferred, error);
}

static void complete_batch(napi_env env, napi_status status, void *data) {
  fsn_batch *b = data;
  napi_value out;
  if (status != napi_ok || napi_create_array_with_length(env, b->n, &out) != napi_ok) {
    fsn_reject(env, b->deferred, "fsnative: the work did not run");
  } else {
    for (uint32_t i = 0; i < b->n; i++) napi_set_element(env, out, i, b->element(env, b, i));
    napi_resolve_deferred(env, b->deferred, out);
  }
  napi_delete_async_work(env, b->work);
  b->discard(b);
}

napi_value fsn_queue_batch(napi_env env, fsn_batch *batch, const char *name, napi_async_execute_callback execute) {
  return fsn_queue(env, batch, name, execute, complete_batch, &batch->work, &batch->deferred, batch->discard);
}

napi_value fsn_queue(napi_env env, void *data, const char *name, napi_async_execute_callback execute, napi_async_complete_callback complete,
                     napi_async_work *work, napi_deferred *deferred, void (*discard)(void *)) {
  napi_value promise, resource_name;
  if (napi_create_promise(env, deferred, &promise) != napi_ok) {
    discard(data);
    return NULL;
  }
  napi_create_string_utf8(env, name, NAPI_AUTO_LENGTH, &resource_name);
  bool created = napi_create_async_work(env, NULL, resource_name, execute, complete, data, work) == napi_ok;
  if (!created || napi_queue_async_work(env, *work) != napi_ok) {
    if (created) napi_delete_async_work(env, *work);
    fsn_reject(env, *deferred, "fsnative: could not queue the work");
    discard(data);
  }
  return promise;
}

#endif
