#!/bin/sh
# System packages the test suite runs against, then the Python card extra (pyscard, gmssl).
# Idempotent: installs only what is missing. Needs root (or sudo) and Debian's apt.
#   scripts/install-test-deps.sh [PYTHON]     PYTHON defaults to .venv/bin/python
#   - openssl:                     the sandbox CA and operator certificates (SM2)
#   - openssh-server:              the real sshd the SFTP tests start
#   - pcscd, vsmartcard-vpcd:      PC/SC with the virtual reader the virtual card plugs into
#   - libpcsclite-dev, swig:       to build pyscard where no wheel fits
#   - chromium, chromium-driver:   the console's browser tests (headless; selenium drives
#                                  /usr/bin/chromium through /usr/bin/chromedriver, never a downloaded browser)
#   - fonts-wqy-microhei:          CJK glyphs for the console's screenshots (receipt notes are Chinese)
set -eu

PYTHON=${1:-.venv/bin/python}
PACKAGES="openssl openssh-server openssh-client pcscd vsmartcard-vpcd libpcsclite-dev swig chromium chromium-driver fonts-wqy-microhei"

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
fi

if [ -x "$PYTHON" ]; then
    "$PYTHON" -c "import smartcard.scard, gmssl" 2>/dev/null || "$PYTHON" -m pip install -q -e ".[card]"
fi
