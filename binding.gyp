{
  "targets": [
    {
      "target_name": "fsnative",
      "sources": ["native/addon.c", "native/napi-helpers.c", "native/fadvise.c", "native/copy-files.c", "native/list-dir.c", "native/read-files.c", "native/md5-x4.c", "native/md5-x8.c"],
      "cflags": ["-Wall", "-Wextra"]
    }
  ]
}
