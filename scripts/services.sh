#!/usr/bin/env bash
# Make sure the machine's PostgreSQL and RabbitMQ are up (the tests use the real servers).
set -uo pipefail
up() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }
if ! up 5432; then
  echo "starting PostgreSQL" >&2
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
fi
if ! up 5672; then
  echo "starting RabbitMQ" >&2
  rabbitmq-server -detached || true
  for _ in $(seq 1 60); do up 5672 && break; sleep 1; done
fi
for port in 5432 5672; do
  up "$port" || { echo "services: nothing listens on 127.0.0.1:$port" >&2; exit 1; }
done
