<#
.SYNOPSIS
    Deletes one run's staging folder (<StagingPath>\<RunId>) once its files are in the backup.

.DESCRIPTION
    Only that folder is removed, and only if it really lies inside -StagingPath. Idempotent:
    a folder already gone is reported as such. Writes exactly one JSON object.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$StagingPath,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'

try {
    $root = [System.IO.Path]::GetFullPath($StagingPath).TrimEnd('\')
    $target = [System.IO.Path]::GetFullPath((Join-Path $root $RunId))
    if (-not $target.StartsWith($root + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
        throw [pscustomobject]@{ Code = 'BAD_PARAMETER'; Message = "$target is not inside $root." }
    }
    $present = Test-Path -LiteralPath $target
    $bytes = if ($present) { [int64](Get-ChildItem -LiteralPath $target -Recurse -File | Microsoft.PowerShell.Utility\Measure-Object -Property Length -Sum).Sum } else { 0 }
    if ($present -and -not $DryRun) { Remove-Item -LiteralPath $target -Recurse -Force }
    $result = [ordered]@{ ok = $true; dry_run = [bool]$DryRun; path = $target; removed = ($present -and -not $DryRun); bytes_freed = $(if ($DryRun) { 0 } else { $bytes }) }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'STAGING_REMOVE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
