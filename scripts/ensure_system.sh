#!/usr/bin/env bash
# What the test suite needs from the system: Debian's chromium for browser tests, and PostgreSQL
# (127.0.0.1:5432) and Redis (127.0.0.1:6379) running for the scale-out tests. Idempotent.
set -euo pipefail

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v chromium >/dev/null 2>&1; then
    as_root apt-get update -q
    DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q chromium
fi

if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
    if ! command -v redis-server >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q redis-server
    fi
    mkdir -p /var/lib/redis /var/log/redis
    as_root redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /var/lib/redis --logfile /var/log/redis/ci.log
fi

if ! pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
    if ! ls /etc/postgresql >/dev/null 2>&1; then
        DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q postgresql
    fi
    version="$(ls /etc/postgresql | sort -V | tail -1)"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    for _ in $(seq 1 30); do pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1 && break; sleep 1; done
fi
redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null
pg_isready -h 127.0.0.1 -p 5432 >/dev/null
