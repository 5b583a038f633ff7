#!/usr/bin/env bash
# The main job on the embedded default: simulated Hyper-V hosts, SQLite, local baies.
# Everything it writes goes under demo-state/ at the top of the repository.
set -euo pipefail
cd "$(dirname "$0")/.."
HVB=.venv/bin/hvbackup
CONFIG=config/demo.yaml

echo "== Checking $CONFIG"
$HVB validate -c "$CONFIG"
echo
echo "== History database"
$HVB db upgrade -c "$CONFIG"
echo
echo "== What is on the simulated hosts"
$HVB inventory -c "$CONFIG" acme/hv01
echo
echo "== What will run"
$HVB plan -c "$CONFIG" --days 7
echo
cat <<TXT
== Where to look
  configuration   $CONFIG
  history         demo-state/hvbackup.db (SQLite; clients, jobs and, soon, every run)
  simulated hosts demo-state/simulated/<client>/<host>/ (their disks, databases and shares)
  the CLI         $HVB --help
TXT
