<#
.SYNOPSIS
    Removes what earlier hvbackup runs left behind on the host: checkpoints and shadow copies.

.DESCRIPTION
    Run at the start of every run, before anything new is created. It removes:
      - checkpoints named "<Prefix>-*" (an earlier run that crashed or was killed), except the
        one of -KeepRunId. Recovery checkpoints are never removed: hvbackup makes none (its
        checkpoints are Standard/Production, named "<Prefix>-<run>"), so one belongs to another
        backup product, whose run may still need it;
      - shadow copies hvbackup recorded in %ProgramData%\hvbackup\shadow-copies.txt (an ID of
        -ShadowId that the file does not record is left alone: hvbackup did not make it), with
        their per-run shares and mount folders, except those of -KeepRunId:
        those of the same -Owner (the same job, which never runs twice at once) at once, those
        of other owners only when recorded more than -ShadowOlderThanHours ago, since another
        job of this host may be reading its copy right now. Shares and mount folders are found
        by their exact recorded names, never by a pattern. A copy already gone still has its
        share and mount folder removed.
      - per-run shares of staging folders (hvb-<run>-sql$, hvb-<run>-vm$, path inside an
        onboarded staging root), except -KeepRunId's, once their folder is gone or older than
        -ShadowOlderThanHours (the share alone: the folder is Remove-HvbStaging.ps1's).
    -SkipCheckpoints / -SkipShadowCopies leave one kind alone (a files job must not remove the
    checkpoint of a VM job running at the same time on the host, nor the reverse).
    It never touches a checkpoint or shadow copy it cannot attribute to hvbackup. Checkpoints
    are removed with Remove-VMSnapshot, which merges their disks (never deleting .avhdx files);
    "merged" is true once the .avhdx made when each was taken are gone (waited for, all
    together, up to -TimeoutSeconds), else false with remaining_files.

    Idempotent. Writes exactly one JSON object. -DryRun lists what would go and changes nothing.
#>
[CmdletBinding()]
param(
    [ValidatePattern('^[A-Za-z0-9]+$')][string]$Prefix = 'hvbackup',
    [string[]]$VMName = @(),
    [string]$KeepRunId = '',
    [ValidatePattern('^[^\t\r\n]{1,200}$')][string]$Owner = 'hvbackup',
    [int]$ShadowOlderThanHours = 24,
    [ValidatePattern('^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$')][string[]]$ShadowId = @(),
    [string]$LinkRoot = (Join-Path $env:ProgramData 'hvbackup\shadow'),
    [int]$TimeoutSeconds = 3600,
    [switch]$SkipCheckpoints,
    [switch]$SkipShadowCopies,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'
$Guid = '^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$'
$RecordLockSeconds = 120

function Use-HvbShadowRecord([scriptblock]$Action) {
    # Every read and write of the record holds this host-wide mutex: two jobs of one host
    # (files jobs, their sweeps) would otherwise lose each other's lines or meet "file in use".
    # Held for the file alone, never across diskshadow or a removal. A holder that died leaves
    # the mutex abandoned: the next waiter gets it (AbandonedMutexException), the file whole.
    $hvbMutex = New-Object System.Threading.Mutex($false, 'Global\hvbackup-shadow-record')
    try {
        try { $hvbHeld = $hvbMutex.WaitOne([TimeSpan]::FromSeconds($RecordLockSeconds)) } catch [System.Threading.AbandonedMutexException] { $hvbHeld = $true }
        if (-not $hvbHeld) { throw [pscustomobject]@{ Code = 'SHADOW_RECORD_BUSY'; Message = "$RecordFile stayed locked by another hvbackup script for $RecordLockSeconds s (mutex Global\hvbackup-shadow-record): a script of this host hangs; see which (Get-Process powershell, wsmprovhost) and end it." } }
        try { & $Action } finally { $hvbMutex.ReleaseMutex() }
    } finally { $hvbMutex.Dispose() }
}

try {
    # Mount folders are found from the record, never under a folder the caller names.
    if ([System.IO.Path]::GetFullPath($LinkRoot).TrimEnd('\') -ne (Join-Path $env:ProgramData 'hvbackup\shadow')) {
        throw [pscustomobject]@{ Code = 'PATH_NOT_ALLOWED'; Message = "-LinkRoot $LinkRoot refused: hvbackup's mount folders are under $(Join-Path $env:ProgramData 'hvbackup\shadow') only." }
    }
    $vms = if ($SkipCheckpoints) { @() } elseif ($VMName.Count) { @(Get-VM | Where-Object { $VMName -contains $_.Name }) } else { @(Get-VM) }
    $keepName = if ($KeepRunId) { "$Prefix-$KeepRunId" } else { '' }
    $watchedOf = @{}
    $checkpoints = foreach ($vm in $vms) {
        $candidates = @(Get-VMSnapshot -VM $vm | Where-Object { "$($_.SnapshotType)" -ne 'Recovery' -and $_.Name.StartsWith("$Prefix-", [System.StringComparison]::OrdinalIgnoreCase) -and $_.Name -ne $keepName -and $_.Name -ne "$keepName (crash-consistent)" })
        foreach ($cp in $candidates) {
            $entry = [ordered]@{ vm = $vm.Name; id = "$($cp.Id)"; name = $cp.Name; type = "$($cp.SnapshotType)"; removed = $false; merged = $false; remaining_files = @(); error = $null }
            if (-not $DryRun) {
                try {
                    # The .avhdx made when it was taken: the VM's when it is the latest, else its
                    # children's (as Remove-HvbCheckpoint.ps1). They are gone once merged.
                    $children = @(Get-VMSnapshot -VM $vm | Where-Object { $_.ParentSnapshotId -eq $cp.Id })
                    $drives = if ($children.Count) { @($children | ForEach-Object { Get-VMHardDiskDrive -VMSnapshot $_ }) } else { @(Get-VMHardDiskDrive -VM $vm) }
                    $watchedOf[$entry.id] = @($drives | Where-Object { $_.Path -like '*.avhdx' } | ForEach-Object Path | Sort-Object -Unique)
                    $job = Remove-VMSnapshot -VMSnapshot $cp -AsJob
                    if (-not (Wait-Job -Job $job -Timeout $TimeoutSeconds)) {
                        Stop-Job -Job $job
                        throw "did not finish within $TimeoutSeconds s"
                    }
                    Receive-Job -Job $job -Wait -ErrorAction Stop | Out-Null
                    Remove-Job -Job $job -Force
                    $entry.removed = $true
                } catch {
                    $entry.error = [ordered]@{ code = 'CHECKPOINT_REMOVE_FAILED'; message = $_.Exception.Message }
                }
            }
            $entry
        }
    }
    # Merges go on after Remove-VMSnapshot returns: wait for them all, as long as one removal.
    $merging = @($checkpoints | Where-Object { $_.removed })
    $deadline = (Get-Date).AddSeconds($TimeoutSeconds)
    while ($merging.Count) {
        foreach ($entry in $merging) {
            $attached = @(Get-VMHardDiskDrive -VM (@($vms | Where-Object { $_.Name -eq $entry.vm })[0]) | ForEach-Object Path)
            $entry.remaining_files = @($watchedOf[$entry.id] | Where-Object { ($attached -contains $_) -or (Test-Path -LiteralPath $_) })
            $entry.merged = $entry.remaining_files.Count -eq 0
        }
        $merging = @($merging | Where-Object { -not $_.merged })
        if (-not $merging.Count -or (Get-Date) -ge $deadline) { break }
        Start-Sleep -Seconds 5
    }

    # A record line: "<id or pending>`t<run>`t<owner>`t<created UTC>`t<volume>`t<mount>`t<share>"
    # (an older line holds an ID alone: it is this host's own, of no known run or owner).
    $lines = @(Use-HvbShadowRecord { if (Test-Path $RecordFile) { @(Get-Content $RecordFile | Where-Object { $_ }) } })
    $records = @(foreach ($line in $lines) {
            $f = @($line -split "`t")
            [pscustomobject]@{ Line = $line; Id = $f[0]; Run = "$($f[1])"; Owner = "$($f[2])"; Created = "$($f[3])"; Mount = "$($f[5])"; Share = "$($f[6])" }
        })
    $cutoff = [DateTime]::UtcNow.AddHours(-$ShadowOlderThanHours)
    $due = @(if (-not $SkipShadowCopies) {
            $records | Where-Object {
                $created = [DateTime]::MinValue
                $old = (-not $_.Created) -or ([DateTime]::TryParse($_.Created, [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind, [ref]$created) -and $created.ToUniversalTime() -lt $cutoff)
                $_.Run -ne $KeepRunId -and ($_.Owner -eq $Owner -or -not $_.Run -or $old)
            }
        })
    $gone = @()
    $shadows = foreach ($group in @($due | Group-Object -Property { if ($_.Mount) { $_.Mount } else { $_.Id } })) {
        $items = @($group.Group)
        $id = @($items | Where-Object { $_.Id -match $Guid } | ForEach-Object { $_.Id })[0]
        $mount = $items[0].Mount
        $share = $items[0].Share
        # By its ID, or (a run killed between creating and recording) by where it is exposed.
        $shadow = if ($id) { Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'" }
        elseif ($mount) { @(Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object { "$($_.ExposedName)".TrimEnd('\') -eq $mount })[0] }
        $entry = [ordered]@{ id = $(if ($shadow) { "$($shadow.ID)" } elseif ($id) { $id } else { 'pending' }); run = $items[0].Run; removed = $false; error = $null }
        if ($DryRun) {
            $entry.present = [bool]$shadow
        } else {
            try {
                if ($share -and (Get-SmbShare -Name $share -ErrorAction SilentlyContinue)) { Remove-SmbShare -Name $share -Force }
                if ($shadow) { $shadow | Remove-CimInstance }
                # The mount folder alone, never a recursive delete through it.
                if ($mount -and (Test-Path -LiteralPath $mount)) { [System.IO.Directory]::Delete($mount, $false) }
                $entry.removed = [bool]$shadow
                $gone += $items
            } catch {
                $entry.error = [ordered]@{ code = 'SHADOW_REMOVE_FAILED'; message = $_.Exception.Message }
            }
        }
        $entry
    }
    if (-not $DryRun -and $gone.Count) {
        # Read again under the lock: lines another job added since the first read are kept.
        $goneLines = @($gone | ForEach-Object { $_.Line })
        Use-HvbShadowRecord { if (Test-Path $RecordFile) { Set-Content -Path $RecordFile -Value @(Get-Content $RecordFile | Where-Object { $_ -and $goneLines -notcontains $_ }) } }
    }

    # Per-run shares of staging folders (hvb-<run>-sql$, hvb-<run>-vm$), their path inside an
    # onboarded staging root: a run that is over left its share when its folder is gone or
    # older than -ShadowOlderThanHours; another job's run now has a young folder, kept.
    $rootsFile = Join-Path $env:ProgramData 'hvbackup\roots.json'
    $stagingRoots = if (Test-Path -LiteralPath $rootsFile) { @((Get-Content -LiteralPath $rootsFile -Raw | ConvertFrom-Json).staging | Where-Object { $_ } | ForEach-Object { [System.IO.Path]::GetFullPath("$_").TrimEnd('\') }) } else { @() }
    $runShares = foreach ($share in @(Get-SmbShare -ErrorAction SilentlyContinue | Where-Object { $_.Name -match '^hvb-([A-Za-z0-9-]+)-(sql|vm)\$$' })) {
        $run = [regex]::Match($share.Name, '^hvb-([A-Za-z0-9-]+)-(sql|vm)\$$').Groups[1].Value
        $path = "$($share.Path)".TrimEnd('\')
        $inRoot = @($stagingRoots | Where-Object { $path.StartsWith($_ + '\', [System.StringComparison]::OrdinalIgnoreCase) }).Count -gt 0
        if (-not $inRoot -or $run -eq $KeepRunId) { continue }
        $folder = Get-Item -LiteralPath $path -ErrorAction SilentlyContinue
        if ($folder -and $folder.CreationTimeUtc -ge $cutoff) { continue }
        $entry = [ordered]@{ name = $share.Name; path = $path; removed = $false; error = $null }
        if (-not $DryRun) {
            try { Remove-SmbShare -Name $share.Name -Force; $entry.removed = $true }
            catch { $entry.error = [ordered]@{ code = 'SHARE_REMOVE_FAILED'; message = $_.Exception.Message } }
        }
        $entry
    }

    $result = [ordered]@{
        ok            = $true
        dry_run       = [bool]$DryRun
        checkpoints   = @($checkpoints)
        shadow_copies = @($shadows)
        run_shares    = @($runShares)
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'SWEEP_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
