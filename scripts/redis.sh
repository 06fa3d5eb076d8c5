# Functions to install and run a Redis server (Debian's redis-server) for the
# Redis tests. Source this file.

REDIS_SERVER="${REDIS_SERVER:-redis-server}"

redis_install() {
  if command -v "$REDIS_SERVER" >/dev/null && command -v redis-cli >/dev/null; then
    return
  fi
  echo "installing redis-server (apt-get)" >&2
  # A fresh machine may have no package lists yet.
  apt-get install -y -q redis-server >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q redis-server >/dev/null; }
}

# Starts a server on 127.0.0.1:$1 with a throwaway directory and no
# persistence; sets REDIS_PID. Waits until it answers PING (at most 30 s).
redis_start() {
  local port="$1" dir="$PWD/target/redis-$1"
  rm -rf "$dir" && mkdir -p "$dir"
  "$REDIS_SERVER" --bind 127.0.0.1 --port "$port" --dir "$dir" --save "" --appendonly no \
    --daemonize no --logfile "$dir/log" &
  REDIS_PID=$!
  for _ in $(seq 300); do
    if redis-cli -h 127.0.0.1 -p "$port" ping 2>/dev/null | grep -q PONG; then
      return 0
    fi
    sleep 0.1
  done
  cat "$dir/log" >&2
  return 1
}

redis_stop() {
  if [ -n "${REDIS_PID:-}" ]; then
    kill "$REDIS_PID" 2>/dev/null || true
    wait "$REDIS_PID" 2>/dev/null || true
    REDIS_PID=
  fi
}
