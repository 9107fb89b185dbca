{
  "targets": [
    {
      "target_name": "fadvise",
      "sources": ["native/fadvise.c"]
    }
  ]
}
