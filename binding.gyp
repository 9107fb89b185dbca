{
  "targets": [
    {
      "target_name": "fsnative",
      "sources": ["native/addon.c", "native/napi-helpers.c", "native/fadvise.c", "native/copy-files.c", "native/list-dir.c", "native/read-files.c"],
      "cflags": ["-Wall", "-Wextra"]
    }
  ]
}
