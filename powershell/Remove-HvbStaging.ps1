<#
.SYNOPSIS
    Deletes one run's staging folder (<StagingPath>\<RunId>) once its files are in the backup.

.DESCRIPTION
    The run's share of the folder (hvb-<RunId>-sql$ or hvb-<RunId>-vm$, made by
    Invoke-HvbSqlBackup.ps1 or New-HvbCheckpoint.ps1 -Mode export) is removed first.
    Only that folder is removed, and only if -StagingPath lies inside a staging root recorded
    on this host by Initialize-HvbHost.ps1 (PATH_NOT_ALLOWED otherwise). Idempotent: a folder
    already gone is reported as such. Writes exactly one JSON object.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$StagingPath,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'

function Assert-HvbRoot([string]$Path, [string]$Kind) {
    # The folders hvbackup may touch are the roots Initialize-HvbHost.ps1 wrote on this host
    # (-StagingRoot, -ShareRoot, -RestoreRoot); the caller never chooses them. Local paths only.
    $file = Join-Path $env:ProgramData 'hvbackup\roots.json'
    if (-not (Test-Path -LiteralPath $file)) { throw [pscustomobject]@{ Code = 'ROOTS_NOT_CONFIGURED'; Message = "$file is missing: run Initialize-HvbHost.ps1 on $env:COMPUTERNAME (it records the folders hvbackup may use)." } }
    $roots = @((Get-Content -LiteralPath $file -Raw | ConvertFrom-Json).$Kind | Where-Object { $_ })
    $full = if ($Path -match '^[A-Za-z]:\\') { [System.IO.Path]::GetFullPath($Path).TrimEnd('\') } else { $null }
    foreach ($root in $roots) {
        $r = [System.IO.Path]::GetFullPath("$root").TrimEnd('\')
        if ($full -and ($full -eq $r -or $full.StartsWith($r + '\', [System.StringComparison]::OrdinalIgnoreCase))) { return $full }
    }
    throw [pscustomobject]@{ Code = 'PATH_NOT_ALLOWED'; Message = "$Path is not inside the $Kind folders allowed on $env:COMPUTERNAME ($(if ($roots) { $roots -join ', ' } else { 'none' })); Initialize-HvbHost.ps1 sets them (-StagingRoot, -ShareRoot, -RestoreRoot)." }
}

try {
    $root = Assert-HvbRoot $StagingPath 'staging'
    $target = [System.IO.Path]::GetFullPath((Join-Path $root $RunId))
    if (-not $target.StartsWith($root + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
        throw [pscustomobject]@{ Code = 'BAD_PARAMETER'; Message = "$target is not inside $root." }
    }
    $present = Test-Path -LiteralPath $target
    # The run's shares of this folder (hvb-<RunId>-sql$, hvb-<RunId>-vm$) go first: no reader
    # is left when the folder goes. Found by their exact names and path, never a pattern.
    $shares = foreach ($name in @("hvb-$RunId-sql`$", "hvb-$RunId-vm`$")) {
        $share = Get-SmbShare -Name $name -ErrorAction SilentlyContinue
        if ($share -and $share.Path.TrimEnd('\') -eq $target.TrimEnd('\')) {
            if (-not $DryRun) { Remove-SmbShare -Name $name -Force }
            [ordered]@{ name = $name; removed = -not $DryRun }
        }
    }
    $bytes = if ($present) { [int64](Get-ChildItem -LiteralPath $target -Recurse -File | Microsoft.PowerShell.Utility\Measure-Object -Property Length -Sum).Sum } else { 0 }
    if ($present -and -not $DryRun) { Remove-Item -LiteralPath $target -Recurse -Force }
    $result = [ordered]@{ ok = $true; dry_run = [bool]$DryRun; path = $target; removed = ($present -and -not $DryRun); bytes_freed = $(if ($DryRun) { 0 } else { $bytes }); shares = @($shares) }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'STAGING_REMOVE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
