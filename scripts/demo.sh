#!/usr/bin/env bash
# make demo: put the sample ERP exports into the inbox and run the daemon until every
# declaration is answered, then show where things are.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in samples/*.csv; do
  type=$(basename "$f" .csv)
  mkdir -p "inbox/$type"
  cp "$f" "inbox/$type/"
done
.venv/bin/swgw run --drain --config config/gateway.toml --timeout 120
echo
.venv/bin/swgw status --config config/gateway.toml
echo
echo "receipts for consumers: outbox/declaration/ ($(ls outbox/declaration | wc -l) files)"
echo "what the Single Window received: var/sandbox/received/"
echo "one declaration's whole story: .venv/bin/swgw trace DL2026110100001"
