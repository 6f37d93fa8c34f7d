#!/usr/bin/env bash
# make demo: put the sample ERP exports into the inbox and run the daemon until every document
# is answered, then show where things are. Signs with a virtual card over PC/SC when pcscd and
# vsmartcard-vpcd are installed, else with the software key of the embedded default.
set -euo pipefail
cd "$(dirname "$0")/.."
for f in samples/*.*; do
  name=$(basename "$f"); type=${name%%.*}
  mkdir -p "inbox/$type"
  cp "$f" "inbox/$type/"
done
config=config/gateway.toml
# pcscd is on this machine (make test installs it) but this venv lacks the card extra: add it
if [ -x /usr/sbin/pcscd ] && ! .venv/bin/python -c "import smartcard.scard, gmssl" 2>/dev/null; then
  .venv/bin/python -m pip install -q -e ".[card]" || echo "could not install the card extra (pyscard, gmssl)"
fi
if .venv/bin/python -c "from card import testbed; testbed.check_installed()" 2>/dev/null; then
  mkdir -p var/card
  [ -s var/card/pin ] || (umask 077; echo 123456 > var/card/pin)
  if .venv/bin/python -m card.testbed up --dir var/card --media-no 8930000012345 --holder 王丹 \
       --enterprise 91210200MA0QC8N67X --pin-file var/card/pin; then
    trap '.venv/bin/python -m card.testbed down --dir var/card >/dev/null' EXIT
    config=config/gateway-card.toml
    echo "signing with the virtual card over PC/SC ($config)"
  fi
else
  echo "pcscd/vsmartcard-vpcd not installed: signing with the software key ($config)"
fi
.venv/bin/swgw run --drain --config "$config" --timeout 120
echo
.venv/bin/swgw status --config "$config"
echo
echo "receipts for consumers: outbox/ ($(find outbox -name '*.xml' | wc -l) files)"
echo "what the Single Window received: var/sandbox/received/"
echo "one declaration's whole story: .venv/bin/swgw trace DL2026110100001"
echo "  (inspected, with its inspection order: .venv/bin/swgw trace DL2026110100002)"
echo "a licence from application to write-off: .venv/bin/swgw trace EL2026000101"
echo "a certificate of origin: .venv/bin/swgw trace INV-2026-0331"
# the operator console on the demo's store, with a demo operator (its password kept in var/)
if [ ! -s var/console-demo-password ]; then
  (umask 077; .venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))" > var/console-demo-password)
fi
export SWGW_DEMO_PASSWORD="$(cat var/console-demo-password)"
.venv/bin/swgw console user add demo --role operator --password-env SWGW_DEMO_PASSWORD --config "$config" \
    >/dev/null 2>&1 \
  || .venv/bin/swgw console user passwd demo --password-env SWGW_DEMO_PASSWORD --config "$config" >/dev/null
echo
echo "the operator console: .venv/bin/swgw console --config $config"
echo "  then open http://127.0.0.1:8642/ and log in as demo, password $SWGW_DEMO_PASSWORD"
echo "  (kept in var/console-demo-password; more users: swgw console user add NAME --role viewer|operator|admin)"
