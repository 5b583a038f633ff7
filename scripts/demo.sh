#!/usr/bin/env bash
# The main job on the embedded default: simulated Hyper-V hosts, SQLite, two local baies.
# Five simulated nights for two clients, through the scheduler itself on a simulated clock;
# the scheduler is down one night (17th-18th: jobs late, then NON EXECUTEE), a guest's VSS
# fails on the 18th, a job due at 06:00 on the 18th is run late when the scheduler comes back
# at 07:45 and is still running as the late reports go out (en cours, then a second message,
# « Complément »), a host does not answer on the 19th and the 20th (the
# hotline acknowledges the outage once, after the 19th; it holds over the 20th). Then a
# restore of a 48 MB database dump and of a share's large files from the second baie.
# Durand's jobs run through a site agent (a process of its own, state in demo-site-durand/);
# acme's on the central server. Everything else it writes goes under demo-state/ at the top
# of the repository (both made anew).
set -euo pipefail
cd "$(dirname "$0")/.."
HVB=.venv/bin/hvbackup
CONFIG=config/demo.yaml
export HVBACKUP_PASSPHRASE="demo: not a real passphrase"

AGENT=demo-site-durand  # the state folder of durand's site agent ("another machine")
rm -rf demo-state "$AGENT"
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
echo "== Dashboard accounts (passwords made here, shown this once)"
ADMIN_PASSWORD=$(.venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))")
CLIENT_PASSWORD=$(.venv/bin/python -c "import secrets; print(secrets.token_urlsafe(12))")
HVBACKUP_USER_PASSWORD="$ADMIN_PASSWORD" $HVB users add -c "$CONFIG" admin --role admin
HVBACKUP_USER_PASSWORD="$CLIENT_PASSWORD" $HVB users add -c "$CONFIG" acme-it --role client \
  --client acme
echo
echo "== Durand's site agent: a single-use token made on the server, spent by the agent"
PORT=$(.venv/bin/python -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); \
print(s.getsockname()[1])")
TOKEN=$($HVB agent token -c "$CONFIG" --site durand-bureaux | grep "^hve_")
$HVB serve -c "$CONFIG" --port "$PORT" >demo-state/serve.log 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  .venv/bin/python -c "import httpx; httpx.get('http://127.0.0.1:$PORT/login')" 2>/dev/null \
    && break
  sleep 0.2
done
$HVB agent enroll --server "http://127.0.0.1:$PORT" --token "$TOKEN" --name agent-durand \
  --state-dir "$AGENT"
kill $SERVER && wait $SERVER 2>/dev/null || true
trap - EXIT
echo
echo "== Four nights, 16 to 19 November 2026. The central server is down from 22:30 on the 17th"
echo "   to 07:45 on the 18th: acme/bureau, due at 06:00, runs late then, as the reports go out;"
echo "   durand's agent backs up on time all the same and its runs reach the server at 07:45."
$HVB nights -c "$CONFIG" --start 2026-11-16 --nights 4 --agent "$AGENT" \
  --stopped 2026-11-17T22:30/2026-11-18T07:45
echo
echo "== The hotline acknowledges durand's outage once (hyperv1 does not answer since the 19th)"
$HVB acknowledge -c "$CONFIG" durand/serveurs --user admin \
  --comment "hyperv1 en panne, client prévenu, technicien sur place demain"
echo
echo "== The fifth night, 20 November: hyperv1 still down, the acknowledgement holds"
$HVB nights -c "$CONFIG" --start 2026-11-20 --nights 1 --agent "$AGENT"
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
cat <<TXT
== Where to look
  configuration   $CONFIG
  reports         demo-state/outbox/*.eml (the clients' reports, a "Complément" one for the run
                    in progress at 07:45 on the 18th, the hotline's summaries and alerts)
  history         demo-state/hvbackup.db (SQLite: runs, steps, log lines, restore points)
  baies           demo-state/baie-site-a/<client>/ and demo-state/baie-site-b/<client>/
  keys            demo-state/keys/ (private keys: passphrase "\$HVBACKUP_PASSPHRASE" above)
  simulated hosts demo-state/simulated/acme/<host>/ (their disks, databases and shares)
  durand's agent  $AGENT/ (its state folder: part.json, the site's part of the
                    configuration it received; history.db, its own runs; spool.db, what it
                    delivered; simulated/durand/hyperv1/, the site's host); its runs are in
                    the server's history too, "agent:agent-durand" as who ran them
  dashboard       $HVB serve -c $CONFIG   then open http://127.0.0.1:8080/
                    admin   / $ADMIN_PASSWORD   (hotline view, every client)
                    acme-it / $CLIENT_PASSWORD   (client portal: acme only)
                    (shown once; change them with: $HVB users passwd -c $CONFIG admin)
                  The dashboard compares with today's date: after these November nights every
                  job shows late and the scheduler red ("hvbackup run" is not running); durand/
                  serveurs shows ECHEC since 19/11, acknowledged once by admin.
  a restore       HVBACKUP_PASSPHRASE="$HVBACKUP_PASSPHRASE" $HVB restore -c $CONFIG acme/partages \\
                    --to /tmp/restored --key-file demo-state/keys/acme.key
TXT
