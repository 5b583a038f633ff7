#!/usr/bin/env bash
# The main job on the embedded default: simulated Hyper-V hosts, SQLite, two local baies.
# Five simulated nights for two clients, through the scheduler itself on a simulated clock;
# the scheduler is down one night (17th-18th), a guest's VSS fails on the 18th, a host does not
# answer on the 19th and the 20th. Then a
# restore of a 48 MB database dump and of a share's large files from the second baie.
# Everything it writes goes under demo-state/ at the top of the repository (made anew).
set -euo pipefail
cd "$(dirname "$0")/.."
HVB=.venv/bin/hvbackup
CONFIG=config/demo.yaml
export HVBACKUP_PASSPHRASE="demo: not a real passphrase"

rm -rf demo-state
mkdir -p demo-state/baie-site-a demo-state/baie-site-b  # the two arrays, "mounted"
echo "== Checking $CONFIG"
$HVB validate -c "$CONFIG" -q && echo "valid"
echo
echo "== Keys (the clients' and the MSP escrow's; passphrase: \$HVBACKUP_PASSPHRASE)"
$HVB keys init -c "$CONFIG" --escrow --key-file demo-state/keys/msp-escrow.key >/dev/null
$HVB keys init -c "$CONFIG" acme --key-file demo-state/keys/acme.key >/dev/null
$HVB keys init -c "$CONFIG" durand --key-file demo-state/keys/durand.key >/dev/null
ls demo-state/keys
echo
echo "== History database"
$HVB db upgrade -c "$CONFIG"
echo
echo "== Five nights, 16 to 20 November 2026 (the scheduler is down from 22:30 on the 17th"
echo "   to 07:45 on the 18th)"
$HVB nights -c "$CONFIG" --start 2026-11-16 --nights 5 \
  --stopped 2026-11-17T22:30/2026-11-18T07:45
echo
echo "== What is on a simulated host now"
$HVB inventory -c "$CONFIG" acme/hv01
echo
echo "== Restore points of acme/erp, and a check of the repository with the client's key"
$HVB snapshots -c "$CONFIG" acme/erp
$HVB verify -c "$CONFIG" acme --read-data-subset 20% --key-file demo-state/keys/acme.key
echo
echo "== The last SQL dumps of acme/compta and the large files of its share, restored from the"
echo "   second baie (site-b) with the client's key"
$HVB restore -c "$CONFIG" acme/compta --baie site-b --to demo-state/restored/compta \
  --key-file demo-state/keys/acme.key
$HVB restore -c "$CONFIG" acme/partages --baie site-b --path 'D:\Partages\Archives' \
  --to demo-state/restored/partages --key-file demo-state/keys/acme.key
find demo-state/restored -type f -exec ls -lh {} + | awk '{printf "  %5s  %s\n", $5, $9}'
echo
echo "== Dashboard accounts (passwords made here, shown this once)"
ADMIN_PASSWORD=$(.venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))")
CLIENT_PASSWORD=$(.venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))")
HVBACKUP_USER_PASSWORD="$ADMIN_PASSWORD" $HVB users add -c "$CONFIG" admin --role admin
HVBACKUP_USER_PASSWORD="$CLIENT_PASSWORD" $HVB users add -c "$CONFIG" acme-it --role client \
  --client acme
echo
cat <<TXT
== Where to look
  configuration   $CONFIG
  history         demo-state/hvbackup.db (SQLite: runs, steps, log lines, restore points)
  baies           demo-state/baie-site-a/<client>/ and demo-state/baie-site-b/<client>/
  keys            demo-state/keys/ (private keys: passphrase "\$HVBACKUP_PASSPHRASE" above)
  simulated hosts demo-state/simulated/<client>/<host>/ (their disks, databases and shares)
  dashboard       $HVB serve -c $CONFIG   then open http://127.0.0.1:8080/
                    admin   / $ADMIN_PASSWORD   (hotline view, every client)
                    acme-it / $CLIENT_PASSWORD   (client portal: acme only)
                    (shown once; change them with: $HVB users passwd -c $CONFIG admin)
  a restore       HVBACKUP_PASSPHRASE="$HVBACKUP_PASSPHRASE" $HVB restore -c $CONFIG acme/partages \\
                    --to /tmp/restored --key-file demo-state/keys/acme.key
TXT
