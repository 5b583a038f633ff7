<#
.SYNOPSIS
    Takes a shadow copy of the volumes holding the given folders and exposes them as links.

.DESCRIPTION
    For each volume of -Path: Win32_ShadowCopy.Create (context ClientAccessible); the new ID is
    recorded at once in %ProgramData%\hvbackup\shadow-copies.txt, so that a run killed at any
    point is cleaned by the next sweep (Clear-HvbLeftovers.ps1); then a directory link
    <LinkRoot>\<RunId>-<drive letter> points at the copy's device (with the trailing backslash
    it needs). "paths[].exposed" is where the backup reads each folder, frozen.
    Every return code of Create is mapped to a named error. If anything fails, the copies
    already made by this call are removed before the error is returned.

    Writes exactly one JSON object. -DryRun lists the volumes and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string[]]$Path,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [string]$LinkRoot = (Join-Path $env:ProgramData 'hvbackup\shadow'),
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'
$CreateErrors = @{
    1  = @('VSS_ACCESS_DENIED', 'access denied: the account needs local administrator rights')
    2  = @('VSS_INVALID_ARGUMENT', 'invalid argument')
    3  = @('VSS_VOLUME_NOT_FOUND', 'the volume was not found')
    4  = @('VSS_VOLUME_NOT_SUPPORTED', 'the volume does not support shadow copies')
    5  = @('VSS_UNSUPPORTED_CONTEXT', 'unsupported shadow copy context')
    6  = @('VSS_INSUFFICIENT_STORAGE', 'not enough free space for the shadow copy storage area')
    7  = @('VSS_VOLUME_IN_USE', 'the volume is in use')
    8  = @('VSS_MAX_SHADOW_COPIES', 'the maximum number of shadow copies is reached: old copies must be removed')
    9  = @('VSS_OPERATION_IN_PROGRESS', 'another shadow copy operation is in progress (another backup?)')
    10 = @('VSS_PROVIDER_VETO', 'the shadow copy provider vetoed the operation')
    11 = @('VSS_PROVIDER_NOT_REGISTERED', 'the shadow copy provider is not registered')
    12 = @('VSS_PROVIDER_FAILURE', 'the shadow copy provider failed')
    13 = @('VSS_UNKNOWN_ERROR', 'unknown error')
}

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

$created = @()
try {
    $volumes = @($Path | ForEach-Object { [System.IO.Path]::GetPathRoot($_) } | Sort-Object -Unique)
    foreach ($p in $Path) {
        Assert-HvbRoot $p 'shares' | Out-Null
        if (-not (Test-Path -LiteralPath $p)) { throw [pscustomobject]@{ Code = 'PATH_NOT_FOUND'; Message = "The folder $p does not exist on $env:COMPUTERNAME." } }
    }
    if ($DryRun) {
        $result = [ordered]@{ ok = $true; dry_run = $true; planned = @($volumes | ForEach-Object { "shadow copy of $_ exposed under $LinkRoot\$RunId-$($_.Substring(0, 1))" }) }
    } else {
        New-Item -ItemType Directory -Force -Path $LinkRoot, (Split-Path $RecordFile) | Out-Null
        $shadows = foreach ($volume in $volumes) {
            $call = Invoke-CimMethod -ClassName Win32_ShadowCopy -MethodName Create -Arguments @{ Volume = $volume; Context = 'ClientAccessible' }
            $code = [int]$call.ReturnValue
            if ($code -ne 0) {
                $known = if ($CreateErrors.ContainsKey($code)) { $CreateErrors[$code] } else { @('VSS_UNKNOWN_ERROR', "return code $code") }
                throw [pscustomobject]@{ Code = $known[0]; Message = "Shadow copy of $volume failed: $($known[1]) (Win32_ShadowCopy.Create returned $code)." }
            }
            $id = $call.ShadowID
            Add-Content -Path $RecordFile -Value $id  # recorded before anything else can fail
            $created += $id
            $shadow = Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'"
            $link = Join-Path $LinkRoot "$RunId-$($volume.Substring(0, 1))"
            if (Test-Path -LiteralPath $link) { [System.IO.Directory]::Delete($link, $false) }
            $output = & cmd.exe /c mklink /d "$link" "$($shadow.DeviceObject)\" 2>&1
            if ($LASTEXITCODE -ne 0) { throw [pscustomobject]@{ Code = 'VSS_LINK_FAILED'; Message = "Cannot link $link to the shadow copy: $output" } }
            [ordered]@{ id = $id; volume = $volume; device_object = $shadow.DeviceObject; link = $link }
        }
        $exposed = foreach ($p in $Path) {
            $root = [System.IO.Path]::GetPathRoot($p)
            $shadow = $shadows | Where-Object { $_.volume -eq $root } | Select-Object -First 1
            [ordered]@{ path = $p; exposed = Join-Path $shadow.link $p.Substring($root.Length) }
        }
        $result = [ordered]@{ ok = $true; shadows = @($shadows); paths = @($exposed) }
    }
} catch {
    foreach ($id in $created) {
        # Undo this call's copies; the sweep would do it later, better now.
        try {
            $link = Join-Path $LinkRoot "$RunId-*"
            Get-Item -Path $link -ErrorAction SilentlyContinue | ForEach-Object { [System.IO.Directory]::Delete($_.FullName, $false) }
            Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$id'" | Remove-CimInstance
        } catch { Write-Warning "Shadow copy $id could not be removed: $($_.Exception.Message)" }
    }
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'VSS_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
