#!/usr/bin/env bash
# Make sure every server the tests talk to is installed and running on this machine.
# Idempotent: does nothing when all is already there. Needs root (or sudo) only to install.
set -euo pipefail

SUDO=""
if [ "$(id -u)" != 0 ] && command -v sudo >/dev/null; then SUDO="sudo"; fi
APT_UPDATED=0

apt_install() {
  if [ "$APT_UPDATED" = 0 ]; then
    echo "services: apt-get update" >&2
    $SUDO apt-get update -qq
    APT_UPDATED=1
  fi
  echo "services: installing $*" >&2
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# Samba: the SMB source tests start their own smbd on a loopback port (not a system service).
if ! command -v smbd >/dev/null || ! command -v smbpasswd >/dev/null; then apt_install samba; fi

# OpenSSH's sshd: the SFTP baie tests start their own on a loopback port.
if [ ! -x /usr/sbin/sshd ]; then apt_install openssh-server; fi
if ! command -v ssh-keygen >/dev/null; then apt_install openssh-client; fi

# Chromium: the rendered e-mails (and later the dashboard) are looked at by a real browser.
if [ ! -x /usr/bin/chromium ]; then apt_install chromium fonts-dejavu-core; fi

# systemd-analyze: the service units are verified by it (systemd itself is not started).
if ! command -v systemd-analyze >/dev/null; then apt_install systemd; fi

# PostgreSQL on 127.0.0.1:5432 with trust auth (the history tests run on it too).
pg_up() { pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; }
if ! command -v pg_isready >/dev/null; then apt_install postgresql; fi
if ! pg_up; then
  if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql
    version=$(ls /etc/postgresql | sort -V | tail -n 1)
    # A fresh cluster asks for passwords on TCP; the tests expect trust on loopback only.
    hba="/etc/postgresql/$version/main/pg_hba.conf"
    $SUDO sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  echo "services: starting PostgreSQL $version" >&2
  $SUDO pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
  for _ in $(seq 1 30); do pg_up && break; sleep 1; done
fi
if ! pg_up; then
  echo "services: PostgreSQL is not answering on 127.0.0.1:5432" >&2
  exit 1
fi
echo "services: PostgreSQL ready on 127.0.0.1:5432" >&2
