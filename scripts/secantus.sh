# Functions to install and run SecantusDB, a MongoDB-wire-compatible server
# (beta, GPL-2.0: run as a separate process, never linked), for the MongoDB tests.
# Source this file; it installs into target/secantus-venv (about 10 s, once).

SECANTUS_VERSION="0.7.0b3"
SECANTUS_VENV="${SECANTUS_VENV:-$PWD/target/secantus-venv}"
SECANTUSD="$SECANTUS_VENV/bin/secantusd-py"

secantus_install() {
  if [ -x "$SECANTUSD" ] && "$SECANTUS_VENV/bin/pip" show SecantusDB 2>/dev/null | grep -q "^Version: $SECANTUS_VERSION\$"; then
    return
  fi
  echo "installing SecantusDB $SECANTUS_VERSION into $SECANTUS_VENV" >&2
  python3 -m venv "$SECANTUS_VENV"
  "$SECANTUS_VENV/bin/pip" install --quiet --disable-pip-version-check --pre "SecantusDB==$SECANTUS_VERSION"
}

# A free TCP port on 127.0.0.1.
secantus_free_port() {
  "$SECANTUS_VENV/bin/python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# Starts a server on 127.0.0.1:$1 with throwaway storage; sets SECANTUS_PID.
# Waits until it answers a ping (at most 60 s).
secantus_start() {
  local port="$1" log="$PWD/target/secantus-$1.log"
  "$SECANTUSD" --host 127.0.0.1 --port "$port" --storage-path :memory: --log-level WARNING >"$log" 2>&1 &
  SECANTUS_PID=$!
  "$SECANTUS_VENV/bin/python" - "$port" <<'PY' || { cat "$log" >&2; kill "$SECANTUS_PID" 2>/dev/null; return 1; }
import sys, time, pymongo
uri = f"mongodb://127.0.0.1:{sys.argv[1]}/?directConnection=true"
deadline = time.monotonic() + 60
while True:
    try:
        pymongo.MongoClient(uri, serverSelectionTimeoutMS=500).admin.command("ping")
        break
    except Exception:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.2)
PY
}

secantus_stop() {
  if [ -n "${SECANTUS_PID:-}" ]; then
    kill "$SECANTUS_PID" 2>/dev/null || true
    wait "$SECANTUS_PID" 2>/dev/null || true
    SECANTUS_PID=
  fi
}
