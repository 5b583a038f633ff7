"""``hvbackup inventory``: what is on a host and whether it is ready to be backed up."""

from __future__ import annotations

import argparse
import json
from typing import Any

from orchestrator.cli.common import add_config_argument, load_from_args
from orchestrator.cli.interactive import human_bytes
from orchestrator.cli.ui import Ui
from orchestrator.clock import Clock
from orchestrator.config.models import HypervVmJob, SqlServerJob
from orchestrator.hosts.open import open_host


def register(sub: Any) -> None:
    parser: argparse.ArgumentParser = sub.add_parser(
        "inventory", help="show a host's VMs, databases and volumes, and their readiness",
        description="Connect to CLIENT/HOST and list its VMs (disks, checkpoints, backup "
                    "integration service), SQL Server databases, volumes and free space, and "
                    "anything hvbackup left behind. Changes nothing on the host.",
    )
    add_config_argument(parser)
    parser.add_argument("host", metavar="CLIENT/HOST")
    parser.add_argument("--json", action="store_true", help="print the raw result as JSON")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace, clock: Clock, ui: Ui) -> int:
    loaded = load_from_args(args)
    session = open_host(loaded.host(args.host), clock)
    try:
        inventory = session.run("Get-HvbInventory")
    finally:
        session.close()
    if args.json:
        ui.print(json.dumps(inventory, indent=2, ensure_ascii=False))
        return 0
    client_name, _, host_name = args.host.partition("/")
    client = loaded.config.clients[client_name]
    backed_up: dict[str, tuple[str, list[str]]] = {}  # lower-case VM name -> (name, jobs)
    for job_name, job in client.jobs.items():
        if job.host == host_name and isinstance(job, HypervVmJob):
            for vm in job.vms:
                backed_up.setdefault(vm.lower(), (vm, []))[1].append(f"{client_name}/{job_name}")
    info = inventory["host"]
    ui.print(f"{args.host}: {info['name']}, {info['os_version']}, Hyper-V {info['hyperv_version']}")
    ui.print()
    rows = []
    for vm in inventory["vms"]:
        size = sum(d["size_bytes"] for d in vm["disks"])
        verdict = _vm_verdict(vm)
        jobs = ", ".join(backed_up.pop(vm["name"].lower(), ("", []))[1]) or "-"
        rows.append([vm["name"], vm["state"], str(vm["generation"]), str(len(vm["disks"])),
                     human_bytes(size), str(len(vm["checkpoints"])), vm["vss"]["status"],
                     verdict, jobs])
    if rows:
        ui.table(["VM", "STATE", "GEN", "DISKS", "SIZE", "CHECKPOINTS", "VSS", "READY", "JOBS"],
                 rows)
    else:
        ui.print("no VMs")
    for missing, naming_jobs in backed_up.values():
        ui.print(f"NOT FOUND: VM {missing!r} named by {', '.join(naming_jobs)} is not on this "
                 "host")
    sql_jobs = {j.instance.lower() for j in client.jobs.values()
                if isinstance(j, SqlServerJob) and j.host == host_name}
    for instance in inventory["sql"]:
        ui.print()
        state = (f"cannot connect: {instance['error']['message']}" if instance.get("error")
                 else f"{instance['edition']} {instance['version']}, backup compression "
                      f"{'yes' if instance['supports_compression'] else 'no'}")
        ui.print(f"SQL Server {instance['instance']}: {state}")
        sql_jobs.discard(instance["instance"].lower())
        for db in instance["databases"]:
            ui.print(f"  {db['name']:<30} {db['state']:<10} {db['recovery_model']:<8} "
                     f"{human_bytes(db['size_bytes'])}")
    for missing_instance in sorted(sql_jobs):
        ui.print(f"NOT FOUND: SQL Server instance {missing_instance!r} named by a job")
    ui.print()
    ui.table(["VOLUME", "LABEL", "SIZE", "FREE"],
             [[v["drive"], v["label"], human_bytes(v["size_bytes"]),
               human_bytes(v["free_bytes"])] for v in inventory["volumes"]])
    left = inventory["leftovers"]
    if left["checkpoints"] or left["shadow_copies"]:
        ui.print()
        ui.print("Left behind by earlier runs (the next run removes them):")
        for cp in left["checkpoints"]:
            ui.print(f"  checkpoint {cp['name']!r} ({cp['type']}) on {cp['vm']}, "
                     f"{cp['created_utc']}")
        for sc in left["shadow_copies"]:
            ui.print(f"  shadow copy {sc['id']} of {sc['volume']}, {sc['created_utc']}")
    return 0


def _vm_verdict(vm: dict[str, Any]) -> str:
    if not vm["vss"]["present"]:
        return "no backup integration service: crash-consistent only"
    if not vm["vss"]["enabled"]:
        return "enable the Backup integration service"
    if vm["state"] == "Running" and not vm["vss"]["healthy"]:
        return f"guest VSS {vm['vss']['status']}: application-consistent will fail"
    if vm["checkpoint_type"] == "Disabled":
        return "checkpoints disabled on this VM"
    if any(cp["is_hvbackup"] for cp in vm["checkpoints"]):
        return "yes (leftover checkpoint to sweep)"
    return "yes"
