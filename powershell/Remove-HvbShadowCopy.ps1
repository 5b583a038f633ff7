<#
.SYNOPSIS
    Removes the shadow copies, their shares and mount folders made by New-HvbShadowCopy.ps1
    for a run.

.DESCRIPTION
    Each per-run share is removed first (no reader left), then the shadow copy (which ends its
    exposure), then its mount folder on its own (never a recursive delete through it), then its
    lines are struck from %ProgramData%\hvbackup\shadow-copies.txt. Idempotent: what is already
    gone is reported as such. Writes exactly one JSON object.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string[]]$ShadowId,
    [string[]]$LinkPath = @(),
    [ValidatePattern('^hvb-[A-Za-z0-9-]+\$$')][string[]]$ShareName = @(),
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'

try {
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
    if (-not $DryRun -and (Test-Path $RecordFile)) {
        # A line is "<id or pending>`t<run>`t<owner>`t<created>`t<volume>`t<mount>`t<share>".
        Set-Content -Path $RecordFile -Value @(Get-Content $RecordFile | Where-Object {
                $fields = $_ -split "`t"
                $_ -and $ShadowId -notcontains $fields[0] -and -not ($fields.Count -ge 6 -and $LinkPath -contains $fields[5])
            })
    }
    $result = [ordered]@{ ok = $true; dry_run = [bool]$DryRun; shares = @($shares); links = @($links); shadow_copies = @($shadows) }
} catch {
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = 'SHADOW_REMOVE_FAILED'; message = $_.Exception.Message } }
}
$result | ConvertTo-Json -Compress -Depth 8
