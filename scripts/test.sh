#!/usr/bin/env bash
# Runs every test in the solution. Installs and starts what the tests need when it is missing:
#   - Azurite (npm, tools/package.json) for the Azure Blob / Queue backends,
#   - python3-onnx (Debian), the ONNX checker for exported files (ONNX Runtime itself runs in process,
#     from the Microsoft.ML.OnnxRuntime NuGet package),
# all on 127.0.0.1, and stops them on exit. Extra arguments go to `dotnet test`
# (for example: scripts/test.sh --filter FullyQualifiedName~Ckks).
#
# SERVERLESS_TESTS_LOCAL_ONLY=1 skips the installs and the server-backed tests, for a quick local
# loop only; CI never sets it, and without it a test whose server is missing fails.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
log() { printf '[test.sh] %s\n' "$*" >&2; }
as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

apt_updated=0
apt_install() {
  if [ $apt_updated -eq 0 ]; then as_root apt-get update -qq >/dev/null; apt_updated=1; fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

free_port() {
  python3 - <<'PY'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}

pids=()
cleanup() {
  local code=$?
  set +e
  # Wait for the servers to exit before removing their directories: Azurite still writes its
  # files for a moment after SIGTERM, and removing them under it fails (a red run with every
  # test passed). A leftover temporary directory is not a failure of the tests.
  for p in "${pids[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null; done
  for p in "${pids[@]:-}"; do [ -n "$p" ] && wait "$p" 2>/dev/null; done
  if [ -n "${work:-}" ]; then
    for _ in 1 2 3 4 5; do rm -rf "$work" 2>/dev/null && break; sleep 1; done
    [ -d "$work" ] && log "left $work behind: it could not be removed"
  fi
  exit $code
}
trap cleanup EXIT INT TERM

if [ "${SERVERLESS_TESTS_LOCAL_ONLY:-0}" != "1" ]; then
  work="$(mktemp -d /tmp/serverless-test.XXXXXX)"
  chmod 755 "$work"

  # --- npm tools: Azurite, node-seal (the CKKS benchmark's peer) ----------------------------
  if [ ! -x tools/node_modules/.bin/azurite ]; then
    log "installing npm tools (azurite, node-seal) into tools/node_modules"
    # --ignore-scripts: nothing we use needs an install script, and none may download anything.
    (cd tools && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null)
  fi

  # --- python3-onnx: the ONNX checker ------------------------------------------------------
  if ! /usr/bin/python3 -c 'import onnx' >/dev/null 2>&1; then
    log "installing python3-onnx (Debian)"
    apt_install python3-onnx
  fi
  export ONNX_CHECKER_PYTHON=/usr/bin/python3

  # --- Azurite -----------------------------------------------------------------------------
  blob_port=$(free_port); queue_port=$(free_port); table_port=$(free_port)
  tools/node_modules/.bin/azurite --silent --disableTelemetry --skipApiVersionCheck --loose --location "$work/azurite" \
    --blobHost 127.0.0.1 --blobPort "$blob_port" --queueHost 127.0.0.1 --queuePort "$queue_port" \
    --tableHost 127.0.0.1 --tablePort "$table_port" >"$work/azurite.log" 2>&1 &
  pids+=($!)
  export SERVERLESS_TEST_AZURITE_BLOB="http://127.0.0.1:$blob_port/devstoreaccount1"
  export SERVERLESS_TEST_AZURITE_QUEUE="http://127.0.0.1:$queue_port/devstoreaccount1"
  export SERVERLESS_TEST_AZURITE_TABLE="http://127.0.0.1:$table_port/devstoreaccount1"

  # Wait for Azurite to accept connections.
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$queue_port") 2>/dev/null && break
    sleep 0.2
  done
  log "azurite on $blob_port/$queue_port/$table_port"
fi

# --- the tests ---------------------------------------------------------------------------
out="$(mktemp /tmp/serverless-test-out.XXXXXX)"
set +e
dotnet test Serverless.sln -c Release --nologo "$@" 2>&1 | tee "$out"
status=${PIPESTATUS[0]}
set -e

# One closing line over all test projects: "N passed, N failed, N skipped".
passed=0; failed=0; skipped=0
while IFS= read -r line; do
  p=$(sed -n 's/.*Passed: *\([0-9]*\).*/\1/p' <<<"$line"); f=$(sed -n 's/.*Failed: *\([0-9]*\).*/\1/p' <<<"$line")
  s=$(sed -n 's/.*Skipped: *\([0-9]*\).*/\1/p' <<<"$line")
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
done < <(grep -E '^(Passed|Failed)! +-' "$out" || true)
rm -f "$out"
if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then failed=1; fi
echo "Tests: $passed passed, $failed failed, $skipped skipped"
exit "$status"
