<#
.SYNOPSIS
    Removes hvbackup's checkpoint of one VM and waits until its disks are merged back.

.DESCRIPTION
    Remove-VMSnapshot merges the checkpoint's .avhdx files into their parents (never delete
    .avhdx files by hand). The merge may go on after the cmdlet returns: this script waits,
    up to -TimeoutSeconds, until none of the files the VM was writing to while the checkpoint
    existed is still attached or present. Those are the .avhdx made when the checkpoint was
    taken: the VM's own disks when it is the latest, else the disks of its child checkpoints
    (Get-VMHardDiskDrive -VMSnapshot). A merge still running at the deadline, or files that
    cannot be told, are reported with "merged": false (the backup itself is fine; the host
    needs a look).

    Only hvbackup's checkpoints: -CheckpointName is "hvbackup-<run>" or
    "hvbackup-<run> (crash-consistent)"; PowerShell refuses any other name before the script runs.

    Idempotent: a checkpoint that no longer exists is reported as already removed.
    Writes exactly one JSON object. -DryRun reports what would be done and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][ValidatePattern('^hvbackup-[A-Za-z0-9-]+( \(crash-consistent\))?$')][string]$CheckpointName,
    [int]$TimeoutSeconds = 3600,
    [int]$PollSeconds = 5,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Fail([string]$Code, [string]$Message) {
    throw [pscustomobject]@{ Code = $Code; Message = $Message }
}

try {
    # Exact name: Get-VM -Name reads *?[] as wildcards.
    $vm = @(Get-VM | Where-Object { $_.Name -eq $VMName }) | Microsoft.PowerShell.Utility\Select-Object -First 1
    if (-not $vm) { Fail 'VM_NOT_FOUND' "No VM named '$VMName' on $env:COMPUTERNAME." }
    $checkpoint = Get-VMSnapshot -VM $vm | Where-Object { $_.Name -eq $CheckpointName } | Microsoft.PowerShell.Utility\Select-Object -First 1
    if (-not $checkpoint) {
        $result = [ordered]@{ ok = $true; vm = $VMName; checkpoint_name = $CheckpointName; removed = $false; already_absent = $true; merged = $true; merge_seconds = 0; remaining_files = @() }
    } elseif ($DryRun) {
        $result = [ordered]@{ ok = $true; dry_run = $true; vm = $VMName; checkpoint_name = $CheckpointName; planned = @("remove checkpoint '$CheckpointName' ($($checkpoint.Id)) and wait for the merge") }
    } else {
        # The files written since the checkpoint: they must disappear once merged. Of the VM
        # when it is the latest, else of the checkpoints taken after it (its children).
        $children = @(Get-VMSnapshot -VM $vm | Where-Object { $_.ParentSnapshotId -eq $checkpoint.Id })
        $drives = if ($children.Count) { @($children | ForEach-Object { Get-VMHardDiskDrive -VMSnapshot $_ }) } else { @(Get-VMHardDiskDrive -VM $vm) }
        $watched = @($drives | Where-Object { $_.Path -like '*.avhdx' } | ForEach-Object Path | Sort-Object -Unique)
        $job = Remove-VMSnapshot -VMSnapshot $checkpoint -AsJob
        if (-not (Wait-Job -Job $job -Timeout $TimeoutSeconds)) {
            Stop-Job -Job $job
            Fail 'TIMEOUT' "Removing checkpoint '$CheckpointName' of $VMName did not finish within $TimeoutSeconds s."
        }
        try { Receive-Job -Job $job -Wait -ErrorAction Stop | Out-Null } catch { Fail 'CHECKPOINT_REMOVE_FAILED' "Removing checkpoint '$CheckpointName' of ${VMName} failed: $($_.Exception.Message)" } finally { Remove-Job -Job $job -Force }

        $started = Get-Date
        $deadline = $started.AddSeconds($TimeoutSeconds)
        do {
            $attached = @(Get-VMHardDiskDrive -VM $vm | ForEach-Object Path)
            $remaining = @($watched | Where-Object { ($attached -contains $_) -or (Test-Path -LiteralPath $_) })
            if ($remaining.Count -eq 0) { break }
            Start-Sleep -Seconds $PollSeconds
        } while ((Get-Date) -lt $deadline)
        $result = [ordered]@{
            ok              = $true
            vm              = $VMName
            checkpoint_name = $CheckpointName
            removed         = $true
            already_absent  = $false
            merged          = ($remaining.Count -eq 0)
            merge_seconds   = [int]((Get-Date) - $started).TotalSeconds
            remaining_files = @($remaining)
        }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'CHECKPOINT_REMOVE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
