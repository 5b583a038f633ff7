<#
.SYNOPSIS
    Removes what earlier hvbackup runs left behind on the host: checkpoints and shadow copies.

.DESCRIPTION
    Run at the start of every run, before anything new is created. It removes:
      - checkpoints named "<Prefix>-*" (an earlier run that crashed or was killed), except the
        one of -KeepRunId;
      - Recovery checkpoints older than -RecoveryOlderThanHours (left by a backup API call that
        never finished; younger ones may belong to a backup running right now and are left);
      - shadow copies whose IDs hvbackup recorded (given by -ShadowId, and those listed in
        %ProgramData%\hvbackup\shadow-copies.txt), with their links.
    -SkipCheckpoints / -SkipShadowCopies leave one kind alone (a files job must not remove the
    checkpoint of a VM job running at the same time on the host, nor the reverse).
    It never touches a checkpoint or shadow copy it cannot attribute to hvbackup. Checkpoints
    are removed with Remove-VMSnapshot, which merges their disks (never deleting .avhdx files).

    Idempotent. Writes exactly one JSON object. -DryRun lists what would go and changes nothing.
#>
[CmdletBinding()]
param(
    [string]$Prefix = 'hvbackup',
    [string[]]$VMName = @(),
    [string]$KeepRunId = '',
    [int]$RecoveryOlderThanHours = 24,
    [string[]]$ShadowId = @(),
    [string]$LinkRoot = (Join-Path $env:ProgramData 'hvbackup\shadow'),
    [int]$TimeoutSeconds = 3600,
    [switch]$SkipCheckpoints,
    [switch]$SkipShadowCopies,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'

try {
    $vms = if ($SkipCheckpoints) { @() } elseif ($VMName.Count) { @(Get-VM | Where-Object { $VMName -contains $_.Name }) } else { @(Get-VM) }
    $cutoff = (Get-Date).AddHours(-$RecoveryOlderThanHours)
    $keepName = if ($KeepRunId) { "$Prefix-$KeepRunId" } else { '' }
    $checkpoints = foreach ($vm in $vms) {
        $candidates = @(Get-VMSnapshot -VM $vm | Where-Object {
                ($_.Name -like "$Prefix-*" -and $_.Name -ne $keepName) -or
                ("$($_.SnapshotType)" -eq 'Recovery' -and $_.CreationTime -lt $cutoff)
            })
        foreach ($cp in $candidates) {
            $entry = [ordered]@{ vm = $vm.Name; id = "$($cp.Id)"; name = $cp.Name; type = "$($cp.SnapshotType)"; removed = $false; merged = $false; error = $null }
            if (-not $DryRun) {
                try {
                    $job = Remove-VMSnapshot -VMSnapshot $cp -AsJob
                    if (-not (Wait-Job -Job $job -Timeout $TimeoutSeconds)) {
                        Stop-Job -Job $job
                        throw "did not finish within $TimeoutSeconds s"
                    }
                    Receive-Job -Job $job -Wait -ErrorAction Stop | Out-Null
                    Remove-Job -Job $job -Force
                    $entry.removed = $true
                    $left = @(Get-VMSnapshot -VM $vm)
                    $entry.merged = ($left.Count -gt 0) -or -not @(Get-VMHardDiskDrive -VM $vm | Where-Object { $_.Path -like '*.avhdx' })
                } catch {
                    $entry.error = [ordered]@{ code = 'CHECKPOINT_REMOVE_FAILED'; message = $_.Exception.Message }
                }
            }
            $entry
        }
    }

    $recorded = if (Test-Path $RecordFile) { @(Get-Content $RecordFile | Where-Object { $_ }) } else { @() }
    $ids = if ($SkipShadowCopies) { @() } else { @($ShadowId + $recorded | Sort-Object -Unique) }
    $shadows = foreach ($id in $ids) {
        $entry = [ordered]@{ id = $id; removed = $false; error = $null }
        $shadow = Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'"
        if ($DryRun) {
            $entry.present = [bool]$shadow
        } else {
            try {
                # Links first (a link is removed alone, never recursively through it).
                foreach ($link in @(Get-ChildItem -Path $LinkRoot -Directory -ErrorAction SilentlyContinue | Where-Object { $_.LinkType -and "$($_.Target)" -like "*$($shadow.DeviceObject)*" })) {
                    [System.IO.Directory]::Delete($link.FullName, $false)
                }
                if ($shadow) { $shadow | Remove-CimInstance }
                $entry.removed = [bool]$shadow
                $recorded = @($recorded | Where-Object { $_ -ne $id })
            } catch {
                $entry.error = [ordered]@{ code = 'SHADOW_REMOVE_FAILED'; message = $_.Exception.Message }
            }
        }
        $entry
    }
    if (-not $DryRun -and (Test-Path $RecordFile)) { Set-Content -Path $RecordFile -Value $recorded }

    $result = [ordered]@{
        ok            = $true
        dry_run       = [bool]$DryRun
        checkpoints   = @($checkpoints)
        shadow_copies = @($shadows)
    }
} catch {
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = 'SWEEP_FAILED'; message = $_.Exception.Message } }
}
$result | ConvertTo-Json -Compress -Depth 8
