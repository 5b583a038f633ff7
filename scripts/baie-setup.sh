#!/usr/bin/env bash
# The Linux side of an SFTP baie: one chrooted, SFTP-only, key-only account per MSP (or per
# orchestrator), with the orchestrator's key pinned to its address. Run as root on the baie.
# Idempotent: running it again repairs what drifted; --remove undoes it (data kept unless
# --purge). See docs/baie-setup.md.
#
#   baie-setup.sh --user hvb-msp --key orchestrator.pub --from 10.20.0.5 [--root /srv/hvbackup]
#   baie-setup.sh --user hvb-msp --remove [--purge]
#   baie-setup.sh --client acme --key agent.pub --from 10.1.0.7 --maint-key server.pub --maint-from 10.20.0.5
#     one client, two accounts on one folder: hvb-acme (the site agent's, append-only) and
#     hvb-acme-maint (the central server's maintenance, which prunes)
set -euo pipefail

USER_NAME="" KEY_FILE="" FROM="" ROOT="/srv/hvbackup" CLIENT="" MAINT_KEY="" MAINT_FROM=""
SSHD_DIR="/etc/ssh/sshd_config.d" KEYS_DIR="/etc/ssh/hvbackup-keys"
REMOVE=0 PURGE=0 DRY=0 RELOAD=1

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
die() { echo "baie-setup: $*" >&2; exit 1; }
say() { echo "baie-setup: $*"; }
run() { if [ "$DRY" = 1 ]; then say "would run: $*"; else "$@"; fi; }

while [ $# -gt 0 ]; do
  case "$1" in
    --user) USER_NAME="$2"; shift 2 ;;
    --key) KEY_FILE="$2"; shift 2 ;;
    --from) FROM="$2"; shift 2 ;;
    --client) CLIENT="$2"; shift 2 ;;
    --maint-key) MAINT_KEY="$2"; shift 2 ;;
    --maint-from) MAINT_FROM="$2"; shift 2 ;;
    --root) ROOT="$2"; shift 2 ;;
    --sshd-config-dir) SSHD_DIR="$2"; shift 2 ;;
    --keys-dir) KEYS_DIR="$2"; shift 2 ;;
    --remove) REMOVE=1; shift ;;
    --purge) PURGE=1; shift ;;
    --dry-run) DRY=1; shift ;;
    --no-reload) RELOAD=0; shift ;;
    -h|--help) usage ;;
    *) die "unknown option $1 (--help)" ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root (it creates an account and changes sshd's configuration)"
if [ -n "$CLIENT" ]; then
  [[ "$CLIENT" =~ ^[a-z][a-z0-9_-]{0,20}$ ]] || die "--client: the client's key in the configuration, e.g. acme"
  [ -z "$USER_NAME" ] || die "--client names the accounts itself (hvb-$CLIENT, hvb-$CLIENT-maint): no --user"
  USER_NAME="hvb-$CLIENT"
fi
[[ "$USER_NAME" =~ ^[a-z_][a-z0-9_-]{0,30}$ ]] || die "--user: a Linux account name, e.g. hvb-msp"
case "$ROOT" in /*) ;; *) die "--root must be an absolute path" ;; esac
CHROOT="$ROOT/$USER_NAME"
SNIPPET="$SSHD_DIR/hvbackup-$USER_NAME.conf"
KEYS="$KEYS_DIR/$USER_NAME"

reload_sshd() {
  [ "$RELOAD" = 1 ] || return 0
  sshd -t || die "sshd refuses its configuration: nothing reloaded; fix it, then run again"
  if command -v systemctl >/dev/null && systemctl is-active --quiet ssh 2>/dev/null; then
    run systemctl reload ssh
  elif command -v systemctl >/dev/null && systemctl is-active --quiet sshd 2>/dev/null; then
    run systemctl reload sshd
  else
    say "reload sshd yourself (no systemd unit ssh or sshd active)"
  fi
}

MAINT_USER="$USER_NAME-maint" GROUP="hvbc-$CLIENT"
if [ "$REMOVE" = 1 ]; then
  if [ -e "$SNIPPET" ]; then run rm -f "$SNIPPET"; say "removed $SNIPPET"; fi
  for account in "$USER_NAME" ${CLIENT:+"$MAINT_USER"}; do
    if [ -e "$KEYS_DIR/$account" ]; then run rm -f "$KEYS_DIR/$account"; say "removed $KEYS_DIR/$account"; fi
    if id "$account" >/dev/null 2>&1; then run userdel "$account"; say "removed account $account"; fi
  done
  if [ -n "$CLIENT" ] && getent group "$GROUP" >/dev/null; then run groupdel "$GROUP"; say "removed group $GROUP"; fi
  if [ "$PURGE" = 1 ] && [ -d "$CHROOT" ]; then
    run rm -rf --one-file-system "$CHROOT"; say "destroyed $CHROOT and every repository in it"
  elif [ -d "$CHROOT" ]; then
    say "kept $CHROOT (the repositories); --purge destroys it"
  fi
  reload_sshd
  exit 0
fi

[ -n "$KEY_FILE" ] && [ -r "$KEY_FILE" ] || die "--key: the orchestrator's public key file (ssh-ed25519 ...)"
KEY_LINE=$(grep -E '^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+' "$KEY_FILE" | head -n 1) \
  || die "$KEY_FILE holds no SSH public key"
[ -n "$FROM" ] || die "--from: the orchestrator's address or subnet (the key works from there only)"
[[ "$FROM" =~ ^[0-9A-Fa-f:.,/*]+$ ]] || die "--from: addresses or subnets, comma-separated"

# What both kinds of setup write: a file replaced only when its content changes.
put_file() {  # path content mode
  if [ -f "$1" ] && [ "$(cat "$1")" = "$2" ]; then say "kept $1"; return; fi
  if [ "$DRY" = 0 ]; then printf '%s\n' "$2" > "$1.tmp" && chmod "$3" "$1.tmp" && mv "$1.tmp" "$1"; fi
  say "wrote $1"
}
ensure_account() {  # name [supplementary group]
  if id "$1" >/dev/null 2>&1; then
    say "kept account $1"
    if [ -n "${2:-}" ]; then run usermod -a -G "$2" "$1"; fi
  else
    # Password field '*': no password can ever match, yet the account is not "locked" ('!'),
    # which sshd would refuse even for key authentication.
    run useradd --system --gid hvbackup-sftp ${2:+--groups "$2"} --home-dir /data \
      --no-create-home --shell /usr/sbin/nologin --password '*' "$1"
    say "created account $1 (no password, no shell)"
  fi
}
match_block() {  # account, then what internal-sftp is given
  printf '%s\n' "Match User $1
    ChrootDirectory $CHROOT
    ForceCommand internal-sftp -d /data${2:+ $2}
    AuthorizedKeysFile $KEYS_DIR/$1
    AuthenticationMethods publickey
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    PermitTTY no
    AllowTcpForwarding no
    AllowAgentForwarding no
    AllowStreamLocalForwarding no
    PermitTunnel no
    X11Forwarding no"
}

# The requests the site agent's account may not make: nothing it can do removes, renames or
# changes a file once written. Opening an existing file for writing (or truncating it) is
# refused by the file's mode: the orchestrator creates every file read-only (0444), and
# changing a mode (setstat, fsetstat) is among the requests refused.
DENIED="remove,rename,posix-rename,setstat,fsetstat,lsetstat,rmdir,symlink,hardlink,copy-data"

if [ -n "$CLIENT" ]; then
  [ -n "$MAINT_KEY" ] && [ -r "$MAINT_KEY" ] || die "--maint-key: the central server's public key file (its maintenance prunes)"
  MAINT_LINE=$(grep -E '^(ssh-ed25519|ecdsa-sha2-nistp256|ssh-rsa) [A-Za-z0-9+/=]+' "$MAINT_KEY" | head -n 1) \
    || die "$MAINT_KEY holds no SSH public key"
  [ -n "$MAINT_FROM" ] || die "--maint-from: the central server's address or subnet"
  [[ "$MAINT_FROM" =~ ^[0-9A-Fa-f:.,/*]+$ ]] || die "--maint-from: addresses or subnets, comma-separated"
  getent group hvbackup-sftp >/dev/null || { run groupadd --system hvbackup-sftp; say "created group hvbackup-sftp"; }
  getent group "$GROUP" >/dev/null || { run groupadd --system "$GROUP"; say "created group $GROUP"; }
  ensure_account "$USER_NAME" "$GROUP"
  ensure_account "$MAINT_USER" "$GROUP"
  # One folder for both: data/ belongs to the maintenance account and the client's group, and
  # every folder made below it inherits the group (setgid); the umask 0007 given to both
  # accounts keeps folders writable by the group (the maintenance removes what the agent
  # wrote) and files readable by it, writable by nobody (0444 asked, 0440 on disk).
  run mkdir -p "$CHROOT/data"
  run chown root:root "$ROOT" "$CHROOT"
  run chmod 755 "$ROOT" "$CHROOT"
  run chown "$MAINT_USER:$GROUP" "$CHROOT/data"
  run chmod 2770 "$CHROOT/data"
  # Files written before the accounts were split (the old full access made them 0644): made
  # read-only, or the agent's account could still open them for writing.
  if [ "$DRY" = 0 ]; then
    find "$CHROOT/data" -type f -perm /222 -exec chmod a-w {} +
    find "$CHROOT/data" -mindepth 1 -type d -exec chgrp "$GROUP" {} + -exec chmod g+rwxs {} +
  fi
  run mkdir -p "$KEYS_DIR"
  run chmod 755 "$KEYS_DIR"
  put_file "$KEYS_DIR/$USER_NAME" "restrict,from=\"$FROM\" $KEY_LINE" 644
  put_file "$KEYS_DIR/$MAINT_USER" "restrict,from=\"$MAINT_FROM\" $MAINT_LINE" 644
  run mkdir -p "$SSHD_DIR"
  put_file "$SNIPPET" "# hvbackup baie accounts of client $CLIENT (scripts/baie-setup.sh --client): SFTP only,
# chrooted, key only. $USER_NAME: the site agent's, append-only (adds files, reads them; can
# neither remove, rename nor change one). $MAINT_USER: the central server's maintenance.
$(match_block "$USER_NAME" "-u 0007 -P $DENIED")
$(match_block "$MAINT_USER" "-u 0007")" 644
  if [ "$SSHD_DIR" = /etc/ssh/sshd_config.d ] && ! grep -qE '^\s*Include\s+/etc/ssh/sshd_config.d/\*\.conf' /etc/ssh/sshd_config; then
    say "WARNING: /etc/ssh/sshd_config does not include sshd_config.d/*.conf: add 'Include /etc/ssh/sshd_config.d/*.conf' at its top"
  fi
  reload_sshd
  host=$(hostname -f 2>/dev/null || hostname)
  cat <<TXT

In the central server's configuration (the site agent's access first, then the maintenance's):
  baies:
    $(hostname -s 2>/dev/null || echo site)-$CLIENT:
      type: sftp
      host: $host
      user: $USER_NAME
      append_only: true                         # the agent may only add files
      key_file: /etc/hvbackup/baie-key          # on the agent: the private half of $KEY_FILE
      known_hosts: /etc/hvbackup/known_hosts
      path: /data
    $(hostname -s 2>/dev/null || echo site)-$CLIENT-maint:
      type: sftp
      host: $host
      user: $MAINT_USER                         # the server's maintenance (prune)
      key_file: /etc/hvbackup/baie-maint-key    # on the server: the private half of $MAINT_KEY
      known_hosts: /etc/hvbackup/known_hosts
      path: /data
Host key to pin (check its fingerprint with 'ssh-keygen -lf' before trusting it):
TXT
  for key in /etc/ssh/ssh_host_ed25519_key.pub; do
    [ -r "$key" ] && echo "  $host $(cut -d' ' -f1,2 "$key")"
  done
  exit 0
fi

# The account: no password, no shell, a member of hvbackup-sftp.
getent group hvbackup-sftp >/dev/null || { run groupadd --system hvbackup-sftp; say "created group hvbackup-sftp"; }
if id "$USER_NAME" >/dev/null 2>&1; then
  say "kept account $USER_NAME"
else
  # Password field '*': no password can ever match, yet the account is not "locked" ('!'),
  # which sshd would refuse even for key authentication.
  run useradd --system --gid hvbackup-sftp --home-dir /data --no-create-home \
    --shell /usr/sbin/nologin --password '*' "$USER_NAME"
  say "created account $USER_NAME (no password, no shell)"
fi

# The chroot: every component root-owned and not writable by others (sshd checks); only
# data/ belongs to the account.
run mkdir -p "$CHROOT/data"
run chown root:root "$ROOT" "$CHROOT"
run chmod 755 "$ROOT" "$CHROOT"
run chown "$USER_NAME:hvbackup-sftp" "$CHROOT/data"
run chmod 700 "$CHROOT/data"

# The orchestrator's key, pinned to its address, with every forwarding refused.
want="restrict,from=\"$FROM\" $KEY_LINE"
run mkdir -p "$KEYS_DIR"
run chmod 755 "$KEYS_DIR"
if [ -f "$KEYS" ] && [ "$(cat "$KEYS")" = "$want" ]; then
  say "kept $KEYS"
else
  if [ "$DRY" = 0 ]; then printf '%s\n' "$want" > "$KEYS.tmp" && chmod 644 "$KEYS.tmp" && mv "$KEYS.tmp" "$KEYS"; fi
  say "wrote $KEYS (key usable from $FROM only)"
fi

snippet="# hvbackup baie account $USER_NAME (scripts/baie-setup.sh): SFTP only, chrooted, key only.
$(match_block "$USER_NAME" "")"
run mkdir -p "$SSHD_DIR"
if [ -f "$SNIPPET" ] && [ "$(cat "$SNIPPET")" = "$snippet" ]; then
  say "kept $SNIPPET"
else
  if [ "$DRY" = 0 ]; then printf '%s\n' "$snippet" > "$SNIPPET"; fi
  say "wrote $SNIPPET"
fi
if [ "$SSHD_DIR" = /etc/ssh/sshd_config.d ] && ! grep -qE '^\s*Include\s+/etc/ssh/sshd_config.d/\*\.conf' /etc/ssh/sshd_config; then
  say "WARNING: /etc/ssh/sshd_config does not include sshd_config.d/*.conf: add 'Include /etc/ssh/sshd_config.d/*.conf' at its top"
fi
reload_sshd

host=$(hostname -f 2>/dev/null || hostname)
cat <<TXT

In the orchestrator's configuration:
  baies:
    $(hostname -s 2>/dev/null || echo site):
      type: sftp
      host: $host
      user: $USER_NAME
      key_file: /etc/hvbackup/baie-key          # the private half of $KEY_FILE
      known_hosts: /etc/hvbackup/known_hosts    # with the line below
      path: /data
Host key to pin (check its fingerprint with 'ssh-keygen -lf' before trusting it):
TXT
for key in /etc/ssh/ssh_host_ed25519_key.pub; do
  [ -r "$key" ] && echo "  $host $(cut -d' ' -f1,2 "$key")"
done
