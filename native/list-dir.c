/*
 * listDir(dir, skip): a Promise of [names, meta] for the entries of `dir` that are files (links to
 * files followed) or folders, in readdir order, less "." and ".." and names starting with `skip`:
 * names[i] and, in the Float64Array meta, at 3i: 1 for a folder (0 for a file), its size and its
 * mtime in ms (as fs.Stats.mtimeMs; 0 and 0 for a folder). A missing `dir` (ENOENT, ENOTDIR) has
 * no entries; another failure rejects with an error shaped as Node's fs errors (syscall scandir).
 * As adapters/fs-worker.ts listDir: links to folders are not followed (a linked folder could loop);
 * an entry that vanishes while listed, or a link that leads nowhere (missing target, a loop of
 * links), is left out; an entry that cannot be stat'ed otherwise fails the listing. Runs on
 * libuv's thread pool. Linux only.
 */
#include "fs-native.h"
#if defined(__linux__)
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef struct {
  char *name;
  double dir, size, mtime_ms;
} entry;

typedef struct {
  napi_async_work work;
  napi_deferred deferred;
  char *dir, *skip;
  entry *entries;
  size_t n, cap;
  int err; /* errno of the failure; 0: none */
} listing;

static double mtime_ms(const struct stat *st) {
  return (double)st->st_mtim.tv_sec * 1e3 + (double)st->st_mtim.tv_nsec / 1e6;
}

static int add(listing *l, const char *name, int dir, const struct stat *st) {
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 256;
    entry *grown = realloc(l->entries, cap * sizeof(entry));
    if (grown == NULL) return ENOMEM;
    l->entries = grown;
    l->cap = cap;
  }
  char *copy = strdup(name);
  if (copy == NULL) return ENOMEM;
  entry *e = &l->entries[l->n++];
  e->name = copy;
  e->dir = dir;
  e->size = dir ? 0 : (double)st->st_size;
  e->mtime_ms = dir ? 0 : mtime_ms(st);
  return 0;
}

static void execute(napi_env env, void *data) {
  (void)env;
  listing *l = data;
  DIR *d = opendir(l->dir);
  if (d == NULL) {
    if (errno != ENOENT && errno != ENOTDIR) l->err = errno;
    return;
  }
  int fd = dirfd(d);
  size_t skip_len = strlen(l->skip);
  struct dirent *de;
  for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
    const char *name = de->d_name;
    if (name[0] == '.' && (name[1] == '\0' || (name[1] == '.' && name[2] == '\0'))) continue;
    if (skip_len && strncmp(name, l->skip, skip_len) == 0) continue;
    unsigned char type = de->d_type;
    struct stat st;
    int err = 0;
    if (type == DT_UNKNOWN) {
      if (fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
        if (errno == ENOENT) continue; /* vanished */
        l->err = errno;
        break;
      }
      type = S_ISDIR(st.st_mode) ? DT_DIR : S_ISREG(st.st_mode) ? DT_REG : S_ISLNK(st.st_mode) ? DT_LNK : DT_FIFO;
    }
    if (type == DT_DIR) {
      err = add(l, name, 1, NULL);
    } else if (type == DT_REG || type == DT_LNK) {
      if (fstatat(fd, name, &st, 0) != 0) {
        if (errno == ENOENT || errno == ELOOP) continue; /* vanished, or a link to nothing */
        l->err = errno;
        break;
      }
      if (!S_ISREG(st.st_mode)) continue; /* a link to a non-file */
      err = add(l, name, 0, &st);
    }
    if (err) {
      l->err = err;
      break;
    }
  }
  if (de == NULL && errno != 0 && l->err == 0) l->err = errno;
  closedir(d);
}

static void free_listing(void *data) {
  listing *l = data;
  for (size_t i = 0; i < l->n; i++) free(l->entries[i].name);
  free(l->entries);
  free(l->dir);
  free(l->skip);
  free(l);
}

static void complete(napi_env env, napi_status status, void *data) {
  listing *l = data;
  napi_value result = NULL, names, meta_buffer, meta, v;
  if (status == napi_ok && l->err == 0) {
    double *at = NULL;
    if (napi_create_array_with_length(env, l->n, &names) == napi_ok &&
        napi_create_arraybuffer(env, l->n * 3 * sizeof(double), (void **)&at, &meta_buffer) == napi_ok &&
        napi_create_typedarray(env, napi_float64_array, l->n * 3, meta_buffer, 0, &meta) == napi_ok &&
        napi_create_array_with_length(env, 2, &result) == napi_ok) {
      for (size_t i = 0; i < l->n; i++) {
        napi_create_string_utf8(env, l->entries[i].name, NAPI_AUTO_LENGTH, &v);
        napi_set_element(env, names, (uint32_t)i, v);
        at[3 * i] = l->entries[i].dir;
        at[3 * i + 1] = l->entries[i].size;
        at[3 * i + 2] = l->entries[i].mtime_ms;
      }
      napi_set_element(env, result, 0, names);
      napi_set_element(env, result, 1, meta);
    } else {
      result = NULL;
    }
  }
  if (result != NULL) napi_resolve_deferred(env, l->deferred, result);
  else napi_reject_deferred(env, l->deferred, fsn_fs_error(env, l->err ? l->err : ENOMEM, "scandir", l->dir, NULL));
  napi_delete_async_work(env, l->work);
  free_listing(l);
}

napi_value ListDir(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  listing *l = NULL;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2 || (l = calloc(1, sizeof(listing))) == NULL ||
      (l->dir = fsn_copy_string(env, argv[0])) == NULL || (l->skip = fsn_copy_string(env, argv[1])) == NULL) {
    if (l) free_listing(l);
    napi_throw_type_error(env, NULL, "listDir: a folder and a prefix to skip (strings) expected");
    return NULL;
  }
  return fsn_queue(env, l, "listDir", execute, complete, &l->work, &l->deferred, free_listing);
}

#endif
