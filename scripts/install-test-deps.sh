#!/bin/sh
# System packages the card tests need (PC/SC stack with the virtual reader), then pyscard.
# Idempotent: installs only what is missing. Needs root (or sudo) and a Debian/Ubuntu apt.
#   scripts/install-test-deps.sh [PYTHON]     PYTHON defaults to .venv/bin/python
set -eu

PYTHON=${1:-.venv/bin/python}
PACKAGES="pcscd vsmartcard-vpcd libpcsclite-dev swig"

missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done

if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "installing:$missing"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
else
    echo "system packages present:$(echo " $PACKAGES")"
fi

if [ -x "$PYTHON" ]; then
    "$PYTHON" -c "import smartcard.scard" 2>/dev/null || "$PYTHON" -m pip install -q "pyscard>=2.0"
fi
