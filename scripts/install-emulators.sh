#!/usr/bin/env bash
# Installs the emulators the test suite runs against, if missing. Idempotent; fast when done.
#   S3:    MinIO            (go install github.com/minio/minio)
#   GCS:   fake-gcs-server  (go install github.com/fsouza/fake-gcs-server)
#   Azure: Azurite          (npm devDependency, installed by `npm ci`)
#   rclone (benchmarks only, with --bench)
set -euo pipefail
GOBIN="$(go env GOPATH)/bin"
export PATH="$GOBIN:$PATH"

need_go() { # binary module
  if command -v "$1" >/dev/null 2>&1; then
    echo "install-emulators: $1 present ($(command -v "$1"))"
  else
    echo "install-emulators: building $1 from $2 (first time only; a few minutes)"
    go install "$2@latest"
  fi
}

need_go fake-gcs-server github.com/fsouza/fake-gcs-server
need_go minio github.com/minio/minio

if [ "${1:-}" = "--bench" ] && ! command -v rclone >/dev/null 2>&1; then
  apt-get update -qq && apt-get install -y -qq rclone
fi
echo "install-emulators: done (binaries in $GOBIN)"
