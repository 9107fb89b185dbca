/*
 * copySmallFiles(srcs, tmps, finals, sizes, mtimesMs): a Promise of one entry per file, in
 * order: the number of bytes copied, or an Error shaped as Node's fs errors (code, errno,
 * syscall, path, dest). The copies run on libuv's thread pool, one after another;
 * JavaScript runs nothing per file.
 *
 * Each file as adapters/fs-worker.ts copyOne copies a file below 1 MiB that needs no hash:
 * - read srcs[i] in reads of sizes[i] + 1 bytes (a short read is its end; the extra byte shows
 *   the file grew) into tmps[i], opened "w" (its folder made if missing), mode 0666 less umask;
 * - the source's pages dropped from the page cache once read (POSIX_FADV_DONTNEED);
 * - when the bytes copied are sizes[i]: mtime set from mtimesMs[i] (NaN: left alone), then
 *   renamed to finals[i]. Another count: tmps[i] removed, the count given (the caller refuses it).
 * On an error tmps[i] is removed. Linux only (the module exports it only there).
 */
#include "fs-native.h"
#if defined(__linux__)
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/** Which path an error names. */
enum { ON_NONE, ON_SRC, ON_TMP, ON_DIR };

typedef struct {
  char *src, *tmp, *final;
  int64_t expect;
  double mtime_ms; /* NaN: none */
  int64_t size;    /* bytes copied */
  int err;         /* errno of the failure; 0: none */
  const char *syscall;
  int on;
} file_job;

typedef struct {
  fsn_batch head; /* first: the batch is an fsn_batch too */
  file_job *jobs;
} batch;

/** The longest read: files up to this size are read whole in one call. */
#define CHUNK ((size_t)1 << 20)

static void fail(file_job *j, int err, const char *syscall, int on) {
  j->err = err;
  j->syscall = syscall;
  j->on = on;
}

/** mkdir -p of `dir` (changed in place, restored): 0 or the errno. EEXIST counts as made. */
static int make_dirs(char *dir) {
  if (mkdir(dir, 0777) == 0 || errno == EEXIST) return 0;
  if (errno != ENOENT) return errno;
  char *slash = strrchr(dir, '/');
  if (slash == NULL || slash == dir) return ENOENT;
  *slash = '\0';
  int err = make_dirs(dir);
  *slash = '/';
  if (err) return err;
  return mkdir(dir, 0777) == 0 || errno == EEXIST ? 0 : errno;
}

/** make_dirs for the folder of `file`. */
static int make_folder_of(const char *file) {
  char *dir = strdup(file);
  if (dir == NULL) return ENOMEM;
  char *slash = strrchr(dir, '/');
  int err = ENOENT;
  if (slash != NULL && slash != dir) {
    *slash = '\0';
    err = make_dirs(dir);
  }
  free(dir);
  return err;
}

static int write_all(int fd, const char *buf, size_t len, int64_t at) {
  for (size_t done = 0; done < len;) {
    ssize_t n = pwrite(fd, buf + done, len - done, (off_t)(at + (int64_t)done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += (size_t)n;
  }
  return 0;
}

/** libuv's conversion of seconds to a timespec, to the µs (so the mtime is the one futimes sets). */
static struct timespec to_timespec(double ms) {
  double t = ms / 1000;
  struct timespec ts;
  ts.tv_sec = (time_t)t;
  ts.tv_nsec = (long)((t - (double)ts.tv_sec) * 1e9);
  ts.tv_nsec -= ts.tv_nsec % 1000;
  if (ts.tv_nsec < 0) {
    ts.tv_sec -= 1;
    ts.tv_nsec += 1000000000;
  }
  return ts;
}

static void copy_one(file_job *j, char *buf) {
  /* O_NONBLOCK: a source replaced by a fifo since it was listed does not hang the open. */
  int in = open(j->src, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (in < 0) {
    fail(j, errno, "open", ON_SRC);
    return;
  }
  int out = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  if (out < 0 && errno == ENOENT) {
    int err = make_folder_of(j->tmp);
    if (err) {
      fail(j, err, "mkdir", ON_DIR);
      close(in);
      return;
    }
    out = open(j->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
  }
  if (out < 0) {
    fail(j, errno, "open", ON_TMP);
    close(in);
    return;
  }
  size_t len = (uint64_t)j->expect < CHUNK ? (size_t)j->expect + 1 : CHUNK;
  int64_t size = 0;
  for (;;) {
    ssize_t n = pread(in, buf, len, (off_t)size);
    if (n < 0) {
      if (errno == EINTR) continue;
      fail(j, errno, "read", ON_NONE);
      goto discard;
    }
    if (n == 0) break;
    int err = write_all(out, buf, (size_t)n, size);
    if (err) {
      fail(j, err, "write", ON_NONE);
      goto discard;
    }
    size += n;
    if (size > j->expect) break;
    if (size == j->expect && (size_t)n < len) break;
  }
  posix_fadvise(in, 0, 0, POSIX_FADV_DONTNEED);
  if (size == j->expect && !isnan(j->mtime_ms)) {
    struct timespec ts[2] = {to_timespec(j->mtime_ms), to_timespec(j->mtime_ms)};
    if (futimens(out, ts) != 0) {
      fail(j, errno, "futime", ON_NONE);
      goto discard;
    }
  }
  int closed = close(out);
  out = -1;
  if (closed != 0) {
    fail(j, errno, "close", ON_NONE);
    goto discard;
  }
  j->size = size;
  if (size != j->expect) {
    unlink(j->tmp);
  } else if (rename(j->tmp, j->final) != 0) {
    fail(j, errno, "rename", ON_TMP);
    goto discard;
  }
  close(in);
  return;
discard:
  if (out >= 0) close(out);
  unlink(j->tmp);
  close(in);
}

static void execute(napi_env env, void *data) {
  (void)env;
  batch *b = data;
  char *buf = malloc(CHUNK + 1);
  for (uint32_t i = 0; i < b->head.n; i++) {
    if (buf == NULL) fail(&b->jobs[i], ENOMEM, "read", ON_NONE);
    else copy_one(&b->jobs[i], buf);
  }
  free(buf);
}

/** The error for a failed job, shaped as Node's fs errors. */
static napi_value error_of(napi_env env, const file_job *j) {
  char *dir = NULL;
  const char *path = j->on == ON_SRC ? j->src : j->on == ON_TMP ? j->tmp : NULL;
  if (j->on == ON_DIR && (dir = strdup(j->tmp)) != NULL) {
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    path = dir;
  }
  napi_value error = fsn_fs_error(env, j->err, j->syscall, path, strcmp(j->syscall, "rename") == 0 ? j->final : NULL);
  free(dir);
  return error;
}

static void free_batch(void *data) {
  batch *b = data;
  for (uint32_t i = 0; i < b->head.n; i++) {
    free(b->jobs[i].src);
    free(b->jobs[i].tmp);
    free(b->jobs[i].final);
  }
  free(b->jobs);
  free(b);
}

/** The outcome of job i: its size, or its error. */
static napi_value outcome(napi_env env, void *data, uint32_t i) {
  const file_job *j = &((batch *)data)->jobs[i];
  napi_value v;
  if (j->err) return error_of(env, j);
  napi_create_int64(env, j->size, &v);
  return v;
}

static napi_value throw_type(napi_env env, const char *message) {
  napi_throw_type_error(env, NULL, message);
  return NULL;
}

napi_value CopySmallFiles(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  uint32_t n = 0;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 5) return throw_type(env, "copySmallFiles: 5 arrays expected");
  for (int a = 0; a < 5; a++) {
    bool is_array = false;
    uint32_t len = 0;
    if (napi_is_array(env, argv[a], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[a], &len) != napi_ok) {
      return throw_type(env, "copySmallFiles: 5 arrays expected");
    }
    if (a == 0) n = len;
    else if (len != n) return throw_type(env, "copySmallFiles: arrays of one length expected");
  }
  batch *b = calloc(1, sizeof(batch));
  if (b == NULL || (n > 0 && (b->jobs = calloc(n, sizeof(file_job))) == NULL)) {
    free(b);
    napi_throw_error(env, NULL, "copySmallFiles: out of memory");
    return NULL;
  }
  b->head.n = n;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v[5];
    for (int a = 0; a < 5; a++) napi_get_element(env, argv[a], i, &v[a]);
    file_job *j = &b->jobs[i];
    j->src = fsn_copy_string(env, v[0]);
    j->tmp = fsn_copy_string(env, v[1]);
    j->final = fsn_copy_string(env, v[2]);
    double expect = -1;
    if (napi_get_value_double(env, v[3], &expect) != napi_ok) expect = -1;
    if (napi_get_value_double(env, v[4], &j->mtime_ms) != napi_ok) j->mtime_ms = NAN;
    if (!j->src || !j->tmp || !j->final || !(expect >= 0 && expect <= 9007199254740991.0)) {
      free_batch(b);
      return throw_type(env, "copySmallFiles: paths (strings) and sizes (non-negative numbers) expected");
    }
    j->expect = (int64_t)expect;
  }
  b->head.element = outcome;
  b->head.discard = free_batch;
  return fsn_queue_batch(env, &b->head, "copySmallFiles", execute);
}

#endif
