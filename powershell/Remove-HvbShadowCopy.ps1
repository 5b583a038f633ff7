<#
.SYNOPSIS
    Removes the shadow copies and links made by New-HvbShadowCopy.ps1 for a run.

.DESCRIPTION
    Each link is removed on its own (never a recursive delete through it), then the shadow copy,
    then its ID is struck from %ProgramData%\hvbackup\shadow-copies.txt. Idempotent: what is
    already gone is reported as such. Writes exactly one JSON object.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string[]]$ShadowId,
    [string[]]$LinkPath = @(),
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'

try {
    $links = foreach ($link in $LinkPath) {
        $present = Test-Path -LiteralPath $link
        if ($present -and -not $DryRun) { [System.IO.Directory]::Delete($link, $false) }
        [ordered]@{ path = $link; removed = ($present -and -not $DryRun) }
    }
    $shadows = foreach ($id in $ShadowId) {
        $shadow = Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'"
        if ($shadow -and -not $DryRun) { $shadow | Remove-CimInstance }
        [ordered]@{ id = $id; removed = ([bool]$shadow -and -not $DryRun); already_absent = -not $shadow }
    }
    if (-not $DryRun -and (Test-Path $RecordFile)) {
        Set-Content -Path $RecordFile -Value @(Get-Content $RecordFile | Where-Object { $_ -and $ShadowId -notcontains $_ })
    }
    $result = [ordered]@{ ok = $true; dry_run = [bool]$DryRun; links = @($links); shadow_copies = @($shadows) }
} catch {
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = 'SHADOW_REMOVE_FAILED'; message = $_.Exception.Message } }
}
$result | ConvertTo-Json -Compress -Depth 8
