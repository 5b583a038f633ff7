<#
.SYNOPSIS
    Removes the shadow copies, their shares and mount folders made by New-HvbShadowCopy.ps1
    for a run.

.DESCRIPTION
    Each per-run share is removed first (no reader left), then the shadow copy (which ends its
    exposure), then its mount folder on its own (never a recursive delete through it), then its
    lines are struck from %ProgramData%\hvbackup\shadow-copies.txt. Idempotent: what is already
    gone is reported as such. Only what that file records is touched: a shadow copy present but
    not recorded there (another product's) is refused with SHADOW_NOT_HVBACKUP, before anything
    is removed. A -LinkPath must be the recorded mount folder of one of the -ShadowId, or this
    run's own mount folder name (%ProgramData%\hvbackup\shadow\<RunId>-<n>, so that a call
    repeated after its record lines were struck still succeeds); any other is PATH_NOT_ALLOWED
    whether it exists or not (the answer says nothing of other paths). A -ShareName must be one
    of this run's shadow-copy shares, hvb-<RunId>-<n>$ (SHARE_OTHER_RUN otherwise: another run's
    share, or a SQL or VM staging share, is left alone). Writes exactly one JSON object.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][ValidatePattern('^\{[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12}\}$')][string[]]$ShadowId,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [string[]]$LinkPath = @(),
    [ValidatePattern('^hvb-[A-Za-z0-9-]+\$$')][string[]]$ShareName = @(),
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'
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
    # A line is "<id or pending>`t<run>`t<owner>`t<created>`t<volume>`t<mount>`t<share>".
    $recorded = @(Use-HvbShadowRecord {
            if (Test-Path $RecordFile) {
                foreach ($line in @(Get-Content $RecordFile | Where-Object { $_ })) { $f = @($line -split "`t"); [pscustomobject]@{ Id = $f[0]; Mount = "$($f[5])" } }
            }
        })
    foreach ($id in $ShadowId) {
        if (-not @($recorded | Where-Object { $_.Id -eq $id }).Count -and (Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'")) {
            throw [pscustomobject]@{ Code = 'SHADOW_NOT_HVBACKUP'; Message = "Shadow copy $id on $env:COMPUTERNAME is not recorded in ${RecordFile}: hvbackup did not make it, and leaves it alone." }
        }
    }
    $mounts = @($recorded | Where-Object { $_.Mount -and $ShadowId -contains $_.Id } | ForEach-Object { [System.IO.Path]::GetFullPath($_.Mount).TrimEnd('\') })
    $ownMount = '^' + [regex]::Escape((Join-Path $env:ProgramData 'hvbackup\shadow') + '\' + $RunId + '-') + '[0-9]+$'
    foreach ($link in $LinkPath) {
        # Decided from the record and the name alone, before the disk is looked at: an absent
        # folder and a refused one get the same answer.
        $full = if ($link -match '^[A-Za-z]:\\') { [System.IO.Path]::GetFullPath($link).TrimEnd('\') }
        if (-not ($full -and ($mounts -contains $full -or $full -match $ownMount))) {
            throw [pscustomobject]@{ Code = 'PATH_NOT_ALLOWED'; Message = "$link is not a mount folder of shadow copy $($ShadowId -join ', ') of run $RunId on $env:COMPUTERNAME; hvbackup removes no other folder." }
        }
    }
    foreach ($name in $ShareName) {
        if ($name -notmatch ('^hvb-' + [regex]::Escape($RunId) + '-[0-9]+\$$')) {
            throw [pscustomobject]@{ Code = 'SHARE_OTHER_RUN'; Message = "The share $name is not a shadow-copy share of run $RunId (hvb-$RunId-<n>`$) on $env:COMPUTERNAME: another run's, or a staging share, is left alone." }
        }
    }
    $shares = foreach ($name in $ShareName) {
        $present = [bool](Get-SmbShare -Name $name -ErrorAction SilentlyContinue)
        if ($present -and -not $DryRun) { Remove-SmbShare -Name $name -Force }
        [ordered]@{ name = $name; removed = ($present -and -not $DryRun) }
    }
    $shadows = foreach ($id in $ShadowId) {
        $shadow = Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'"
        if ($shadow -and -not $DryRun) { $shadow | Remove-CimInstance }
        [ordered]@{ id = $id; removed = ([bool]$shadow -and -not $DryRun); already_absent = -not $shadow }
    }
    $links = foreach ($link in $LinkPath) {
        $present = Test-Path -LiteralPath $link
        if ($present -and -not $DryRun) { [System.IO.Directory]::Delete($link, $false) }
        [ordered]@{ path = $link; removed = ($present -and -not $DryRun) }
    }
    if (-not $DryRun) {
        # A line is "<id or pending>`t<run>`t<owner>`t<created>`t<volume>`t<mount>`t<share>".
        Use-HvbShadowRecord {
            if (Test-Path $RecordFile) {
                Set-Content -Path $RecordFile -Value @(Get-Content $RecordFile | Where-Object {
                        $fields = $_ -split "`t"
                        $_ -and $ShadowId -notcontains $fields[0] -and -not ($fields.Count -ge 6 -and $LinkPath -contains $fields[5])
                    })
            }
        }
    }
    $result = [ordered]@{ ok = $true; dry_run = [bool]$DryRun; shares = @($shares); links = @($links); shadow_copies = @($shadows) }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'SHADOW_REMOVE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
