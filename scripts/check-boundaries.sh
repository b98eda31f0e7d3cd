#!/usr/bin/env bash
# vtgrid-core holds the domain rules with no I/O: it must not depend on tokio, tonic or RocksDB
# (STYLE.md, "Make the boundary checkable").
set -euo pipefail
bad=$(cargo tree -p vtgrid-core -e normal --prefix none | grep -E '^(tokio|tonic|rocksdb|librocksdb-sys|openraft) ' || true)
if [ -n "$bad" ]; then
  echo "vtgrid-core depends on I/O crates:"; echo "$bad"; exit 1
fi
echo "boundaries ok: vtgrid-core has no tokio, tonic, rocksdb or openraft"
# The copy engine decides what to copy and when; the grid transport is the node's (behind CopySite).
bad=$(cargo tree -p vtgrid-copy -e normal --prefix none | grep -E '^(tonic|prost|hyper) ' || true)
if [ -n "$bad" ]; then
  echo "vtgrid-copy depends on the grid transport:"; echo "$bad"; exit 1
fi
echo "boundaries ok: vtgrid-copy has no tonic, prost or hyper"
