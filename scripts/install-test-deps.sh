#!/bin/sh
# Install the system packages the test suite needs. Idempotent: packages already
# present are skipped, and `apt-get update` runs only when something is missing.
# Run as root (the CI image and the dev sandbox are root); otherwise via sudo.
set -eu

missing=""
need() {
    # need <package> <command-or-path proving it is installed>
    if [ ! -e "$2" ] && ! command -v "$2" >/dev/null 2>&1; then
        missing="$missing $1"
    fi
}

# --- openssh-server: tests/transports start a private sshd (internal-sftp) on
#     127.0.0.1 for the SFTP transport tests. Only the binary is needed; the
#     package's own system service is not used.
need openssh-server /usr/sbin/sshd
need openssh-client ssh-keygen

# --- (card layer: pcscd / vsmartcard-vpcd / libpcsclite-dev lines go here)

if [ -n "$missing" ]; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    echo "install-test-deps: installing$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
else
    echo "install-test-deps: all present"
fi
