#!/usr/bin/env bash
# Install the system packages the test suite runs against. Idempotent: skips what is there.
set -euo pipefail
need=()
have() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

# --- openssh-server: tests/transports start a private sshd (internal-sftp) on 127.0.0.1
#     for the SFTP transport tests (tests/transports/sshd_server.py). Only the binary is
#     used; the package's system service is not needed (and not started in containers).
for pkg in openssh-server openssh-client; do
  have "$pkg" || need+=("$pkg")
done

# --- card layer: pcscd / vsmartcard-vpcd / libpcsclite-dev go here.

if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then echo "install-test-deps: need root to install ${need[*]}" >&2; exit 1; fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
