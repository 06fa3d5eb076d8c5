# Functions to install and run a PostgreSQL server (Debian's `postgresql`) for
# the SQL tests. Source this file.

postgres_install() {
  if ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
    return
  fi
  echo "installing postgresql (apt-get)" >&2
  # A fresh machine may have no package lists yet.
  apt-get install -y -q postgresql >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q postgresql >/dev/null; }
}

# Starts a server on 127.0.0.1:$1 with a throwaway data directory; sets
# POSTGRES_PID and POSTGRES_DIR. Waits until it accepts connections (at most 60 s).
postgres_start() {
  local port="$1"
  POSTGRES_DIR="$(mktemp -d /tmp/cachier-postgres.XXXXXX)"
  chmod 755 "$POSTGRES_DIR"
  scripts/postgres-server "$port" "$POSTGRES_DIR/data" >"$POSTGRES_DIR/log" 2>&1 &
  POSTGRES_PID=$!
  local ready
  ready="$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)/pg_isready"
  for _ in $(seq 600); do
    if "$ready" -q -h 127.0.0.1 -p "$port" -U cachier -d postgres; then
      return 0
    fi
    if ! kill -0 "$POSTGRES_PID" 2>/dev/null; then
      break
    fi
    sleep 0.1
  done
  cat "$POSTGRES_DIR/log" >&2
  return 1
}

postgres_stop() {
  if [ -n "${POSTGRES_PID:-}" ]; then
    kill -INT "$POSTGRES_PID" 2>/dev/null || true
    wait "$POSTGRES_PID" 2>/dev/null || true
    POSTGRES_PID=
  fi
  if [ -n "${POSTGRES_DIR:-}" ]; then
    rm -rf "$POSTGRES_DIR"
    POSTGRES_DIR=
  fi
}
