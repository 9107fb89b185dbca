/*
 * readSmallFiles(paths, max): a Promise of one entry per file, in order: its bytes (a Buffer),
 * true when it holds more than `max` bytes (not read), or null when it could not be read (the
 * caller reads it again, for the real error). As adapters/fs-worker.ts readMany: the file is read
 * from its start until a read gives nothing or its size at open is reached, then its pages are
 * dropped from the page cache. Runs on libuv's thread pool, one file after another. Linux only.
 */
#include "fs-native.h"
#if defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct {
  char *path;
  char *bytes; /* malloc'd; handed to the Buffer */
  size_t size;
  int state; /* READ, BIG or FAILED */
} file_read;

enum { READ, BIG, FAILED };

typedef struct {
  fsn_batch head; /* first: the batch is an fsn_batch too */
  double max;
  file_read *files;
} batch;

static void read_one(file_read *f, double max) {
  f->state = FAILED;
  int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK); /* a fifo does not hang the open */
  if (fd < 0) return;
  struct stat st;
  if (fstat(fd, &st) != 0) goto done;
  if ((double)st.st_size > max) {
    f->state = BIG;
    goto done;
  }
  size_t want = (size_t)st.st_size;
  f->bytes = malloc(want ? want : 1);
  if (f->bytes == NULL) goto done;
  size_t got = 0;
  while (got < want) {
    ssize_t n = pread(fd, f->bytes + got, want - got, (off_t)got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      free(f->bytes);
      f->bytes = NULL;
      goto done;
    }
    if (n == 0) break;
    got += (size_t)n;
  }
  posix_fadvise(fd, 0, (off_t)got, POSIX_FADV_DONTNEED);
  f->size = got;
  f->state = READ;
done:
  close(fd);
}

static void execute(napi_env env, void *data) {
  (void)env;
  batch *b = data;
  for (uint32_t i = 0; i < b->head.n; i++) read_one(&b->files[i], b->max);
}

static void free_batch(void *data) {
  batch *b = data;
  for (uint32_t i = 0; i < b->head.n; i++) {
    free(b->files[i].path);
    free(b->files[i].bytes);
  }
  free(b->files);
  free(b);
}

static void free_bytes(napi_env env, void *bytes, void *hint) {
  (void)env;
  (void)hint;
  free(bytes);
}

/** A Buffer over f's bytes, which it then owns; copied where Node allows no external memory. */
static napi_value buffer_of(napi_env env, file_read *f) {
  napi_value buf;
  if (napi_create_external_buffer(env, f->size, f->bytes, free_bytes, NULL, &buf) == napi_ok) {
    f->bytes = NULL;
    return buf;
  }
  void *copy;
  return napi_create_buffer_copy(env, f->size, f->bytes, &copy, &buf) == napi_ok ? buf : NULL;
}

/** File i's outcome: its bytes, true (too big) or null (failed). */
static napi_value outcome(napi_env env, void *data, uint32_t i) {
  file_read *f = &((batch *)data)->files[i];
  napi_value v = NULL;
  if (f->state == READ) v = buffer_of(env, f);
  else if (f->state == BIG) napi_get_boolean(env, true, &v);
  if (v == NULL) napi_get_null(env, &v);
  return v;
}

napi_value ReadSmallFiles(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  bool is_array = false;
  uint32_t n = 0;
  double max = -1;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || napi_is_array(env, argv[0], &is_array) != napi_ok || !is_array ||
      napi_get_array_length(env, argv[0], &n) != napi_ok || napi_get_value_double(env, argv[1], &max) != napi_ok || !(max >= 0)) {
    napi_throw_type_error(env, NULL, "readSmallFiles: paths (an array) and a size limit expected");
    return NULL;
  }
  batch *b = calloc(1, sizeof(batch));
  if (b == NULL || (n > 0 && (b->files = calloc(n, sizeof(file_read))) == NULL)) {
    free(b);
    napi_throw_error(env, NULL, "readSmallFiles: out of memory");
    return NULL;
  }
  b->head.n = n;
  b->max = max;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[0], i, &v) != napi_ok || (b->files[i].path = fsn_copy_string(env, v)) == NULL) {
      free_batch(b);
      napi_throw_type_error(env, NULL, "readSmallFiles: paths must be strings");
      return NULL;
    }
  }
  b->head.element = outcome;
  b->head.discard = free_batch;
  return fsn_queue_batch(env, &b->head, "readSmallFiles", execute);
}

#endif
