<#
.SYNOPSIS
    Takes a shadow copy of the volumes holding the given folders and shares each one for this
    run, to the connected account only.

.DESCRIPTION
    For each volume of -Path (the volume a folder is on, mount-point volumes included:
    the longest Win32_Volume.Name that starts the path):
      - DiskShadow, context "persistent" (VSS_CTX_APP_ROLLBACK): the writers take part, so
        open databases on the shares are application-consistent; not ClientAccessible, so the
        copy is not one of the users' Previous Versions (VSS_CTX_CLIENT_ACCESSIBLE implies
        VSS_VOLSNAP_ATTR_NO_WRITERS);
      - the copy is exposed as a mounted folder <LinkRoot>\<RunId>-<n> (a volume mount point,
        which the SMB server crosses itself; a symbolic link to \\?\GLOBALROOT\Device\... is
        left to the SMB client, which cannot follow a link to a local device);
      - a hidden share hvb-<RunId>-<n>$ of that folder, read access for the account connected
        through WinRM only ($PSSenderInfo.ConnectedUser), no offline caching, folder
        enumeration Unrestricted: each file keeps its NTFS ACL (the stricter of share and NTFS
        wins), and a file the account may not read must be listed, so that the run names it,
        not hidden as access-based enumeration would. Initialize-HvbHost.ps1 -ShareRoot gives
        the account an inherited Read ACE on the files roots.
    -LinkRoot may only be its default, %ProgramData%\hvbackup\shadow (PATH_NOT_ALLOWED otherwise):
    the caller never chooses where folders are made, mounted and shared.
    Each step is recorded in %ProgramData%\hvbackup\shadow-copies.txt (one tab-separated line:
    shadow id or "pending", run, owner, created UTC, volume, mount folder, share) before the
    next one can fail, so that Clear-HvbLeftovers.ps1 removes what a killed run left.
    "paths[].exposed" is where the backup reads each folder, frozen:
    \\<COMPUTERNAME>\hvb-<RunId>-<n>$\<folder below the volume root>.
    Idempotent for a RunId: a copy already made for it is reused. If anything fails, what this
    call made is removed before the error is returned.

    Writes exactly one JSON object. -DryRun lists the volumes and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string[]]$Path,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [ValidatePattern('^[^\t\r\n]{1,200}$')][string]$Owner = 'hvbackup',
    [string]$LinkRoot = (Join-Path $env:ProgramData 'hvbackup\shadow'),
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$RecordFile = Join-Path $env:ProgramData 'hvbackup\shadow-copies.txt'
$RecordLockSeconds = 120

function Invoke-HvbNative([string]$File, [string[]]$Arguments) {
    # Windows PowerShell 5.1 turns a native command's stderr into error records; under 'Stop'
    # the first line would end the script before its exit code is read, with a message that
    # hides which step failed. Collect everything as text, then judge by the exit code.
    $saved = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        $text = @(& $File @Arguments 2>&1 | ForEach-Object { "$_" }) -join "`n"
        [pscustomobject]@{ ExitCode = $LASTEXITCODE; Output = $text }
    } finally { $ErrorActionPreference = $saved }
}

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

function Test-HvbHresult([string]$Text, [string]$Name, [string]$Hex) {
    # VSS errors reach DiskShadow's output by name (VSS_E_...) or as a number, in whichever form
    # the component printed it: 0x8004231F, 8004231f, or decimal, unsigned (2147754783) or
    # signed (-2147212513, an HRESULT being an Int32). Any of them, never inside a longer word.
    # The code comes as hex text: a literal 0x8004231F is an Int32 (negative) in PowerShell.
    $unsigned = [System.Convert]::ToUInt32($Hex, 16)
    $signed = [System.BitConverter]::ToInt32([System.BitConverter]::GetBytes($unsigned), 0)
    $Text -match ('(?<![0-9A-Za-z_-])(' + $Name + '|(0x)?' + $Hex + '|' + $unsigned + '|' + $signed + ')(?![0-9A-Za-z_])')
}

function Add-HvbRecord([string[]]$Fields) {
    Use-HvbShadowRecord { Add-Content -Path $RecordFile -Value ($Fields -join "`t") }
}

function Get-HvbVolumeOf([string]$Folder, [object[]]$Volumes) {
    # A folder belongs to the volume mounted deepest on its path (D:\Mounts\Data\x is on the
    # volume mounted at D:\Mounts\Data\, not on D:\).
    $full = [System.IO.Path]::GetFullPath($Folder).TrimEnd('\') + '\'
    $holding = @($Volumes | Where-Object { $full.StartsWith($_.Name, [System.StringComparison]::OrdinalIgnoreCase) } |
            Sort-Object -Property @{ Expression = { $_.Name.Length }; Descending = $true })
    if ($holding.Count) { $holding[0] }
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

$made = @()  # this call's copies: [ordered] entries, undone on failure
try {
    # Folders are made, mounted and shared under hvbackup's own folder only, never the caller's.
    $ownLinkRoot = Join-Path $env:ProgramData 'hvbackup\shadow'
    if ([System.IO.Path]::GetFullPath($LinkRoot).TrimEnd('\') -ne $ownLinkRoot) { throw [pscustomobject]@{ Code = 'PATH_NOT_ALLOWED'; Message = "-LinkRoot $LinkRoot refused: hvbackup's mount folders are under $ownLinkRoot only." } }
    $LinkRoot = $ownLinkRoot
    foreach ($p in $Path) {
        Assert-HvbRoot $p 'shares' | Out-Null
        if (-not (Test-Path -LiteralPath $p -PathType Container)) { throw [pscustomobject]@{ Code = 'PATH_NOT_FOUND'; Message = "The folder $p does not exist on $env:COMPUTERNAME." } }
    }
    $allVolumes = @(Get-CimInstance -ClassName Win32_Volume -Filter 'DriveType = 3' | Where-Object { $_.Name -notlike '\\?\*' })
    $byPath = [ordered]@{}
    foreach ($p in $Path) {
        $volume = Get-HvbVolumeOf $p $allVolumes
        if (-not $volume) { throw [pscustomobject]@{ Code = 'VSS_VOLUME_NOT_FOUND'; Message = "No local volume holds $p on $env:COMPUTERNAME." } }
        $byPath[$p] = $volume.Name
    }
    $volumes = @($byPath.Values | Sort-Object -Unique)
    $reader = if ($PSSenderInfo -and $PSSenderInfo.ConnectedUser) { $PSSenderInfo.ConnectedUser } else { "$env:USERDOMAIN\$env:USERNAME" }
    if ($DryRun) {
        $i = 0
        $planned = foreach ($v in $volumes) { $i++; "shadow copy of $v (writers involved) mounted at $LinkRoot\$RunId-$i, shared as hvb-$RunId-$i`$ to $reader only" }
        $result = [ordered]@{ ok = $true; dry_run = $true; planned = @($planned) }
    } else {
        New-Item -ItemType Directory -Force -Path $LinkRoot, (Split-Path $RecordFile) | Out-Null
        $i = 0
        $shadows = foreach ($volume in $volumes) {
            $i++
            $mount = Join-Path $LinkRoot "$RunId-$i"
            $share = "hvb-$RunId-$i`$"
            $existing = Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object { "$($_.ExposedName)".TrimEnd('\') -eq $mount }
            if (-not $existing) {
                if (Test-Path -LiteralPath $mount) { [System.IO.Directory]::Delete($mount, $false) }
                New-Item -ItemType Directory -Path $mount | Out-Null
                Add-HvbRecord @('pending', $RunId, $Owner, [DateTime]::UtcNow.ToString('o', [System.Globalization.CultureInfo]::InvariantCulture), $volume, $mount, $share)
                # The copies there were before: a copy DiskShadow makes and then fails to expose
                # is found by its ID in DiskShadow's output, and removed with the rest.
                $before = @(Get-CimInstance -ClassName Win32_ShadowCopy | ForEach-Object { "$($_.ID)" })
                $script = Join-Path (Split-Path $RecordFile) "diskshadow-$RunId-$i.txt"
                Set-Content -Path $script -Encoding ASCII -Value @(
                    'set context persistent', 'set verbose off',
                    "add volume $volume alias hvb$i", 'create', "expose %hvb$i% $mount")
                $call = Invoke-HvbNative "$env:SystemRoot\System32\diskshadow.exe" @('/s', $script)
                Remove-Item -LiteralPath $script -ErrorAction SilentlyContinue
                $existing = Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object { "$($_.ExposedName)".TrimEnd('\') -eq $mount }
                if ($call.ExitCode -ne 0 -or -not $existing) {
                    # Undone by the catch below like the copies already made: the copy DiskShadow
                    # created (exposed or not), its mount folder, a share of that name.
                    $named = @([regex]::Matches("$($call.Output)", '\{[0-9A-Fa-f]{8}(-[0-9A-Fa-f]{4}){3}-[0-9A-Fa-f]{12}\}') | ForEach-Object { $_.Value.ToUpperInvariant() })
                    $leaked = @(Get-CimInstance -ClassName Win32_ShadowCopy | Where-Object {
                            $sid = "$($_.ID)"
                            $before -notcontains $sid -and ($named -contains $sid.ToUpperInvariant() -or "$($_.ExposedName)".TrimEnd('\') -eq $mount) })
                    foreach ($copy in $leaked) { $made += [ordered]@{ id = "$($copy.ID)"; link = $mount; share = $share } }
                    if (-not $leaked) { $made += [ordered]@{ id = $null; link = $mount; share = $share } }
                    $code = if (Test-HvbHresult $call.Output 'VSS_E_INSUFFICIENT_STORAGE' '8004231F') { 'VSS_INSUFFICIENT_STORAGE' }
                    elseif (Test-HvbHresult $call.Output 'VSS_E_SNAPSHOT_SET_IN_PROGRESS' '80042316') { 'VSS_OPERATION_IN_PROGRESS' }
                    elseif (Test-HvbHresult $call.Output 'VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED' '80042317') { 'VSS_MAX_SHADOW_COPIES' }
                    elseif ($leaked) { 'VSS_LINK_FAILED' } else { 'VSS_FAILED' }
                    throw [pscustomobject]@{ Code = $code; Message = "Shadow copy of $volume failed (diskshadow exit code $($call.ExitCode)): $($call.Output)" }
                }
            }
            $id = "$($existing.ID)"
            Add-HvbRecord @($id, $RunId, $Owner, [DateTime]::UtcNow.ToString('o', [System.Globalization.CultureInfo]::InvariantCulture), $volume, $mount, $share)
            $entry = [ordered]@{ id = $id; volume = $volume; device_object = "$($existing.DeviceObject)"; link = $mount; share = $share; writers = -not $existing.NoWriters; client_accessible = [bool]$existing.ClientAccessible }
            $made += $entry
            $current = Get-SmbShare -Name $share -ErrorAction SilentlyContinue
            if ($current -and $current.Path.TrimEnd('\') -ne $mount) { Remove-SmbShare -Name $share -Force }
            if (-not $current -or $current.Path.TrimEnd('\') -ne $mount) {
                # Unrestricted: with AccessBased, SMB would hide the files whose NTFS ACL
                # refuses the account, and they would be left out silently; listed, they are
                # refused at open and the run names them (docs/host-scripts.md).
                New-SmbShare -Name $share -Path $mount -ReadAccess $reader -CachingMode None -FolderEnumerationMode Unrestricted -Description "hvbackup run $RunId" | Out-Null
            }
            $entry
        }
        $exposed = foreach ($p in $Path) {
            $volume = $byPath[$p]
            $shadow = @($shadows | Where-Object { $_.volume -eq $volume })[0]
            $below = ([System.IO.Path]::GetFullPath($p).TrimEnd('\') + '\').Substring($volume.Length).TrimEnd('\')
            [ordered]@{ path = $p; exposed = ("\\$env:COMPUTERNAME\$($shadow.share)\$below").TrimEnd('\') }
        }
        $result = [ordered]@{ ok = $true; shadows = @($shadows); paths = @($exposed) }
    }
} catch {
    foreach ($entry in $made) {
        # Undo this call's copies; the sweep would do it later, better now.
        try {
            if (Get-SmbShare -Name $entry.share -ErrorAction SilentlyContinue) { Remove-SmbShare -Name $entry.share -Force }
            if ($entry.id) { Get-CimInstance -ClassName Win32_ShadowCopy -Filter "ID = '$($entry.id)'" | Remove-CimInstance }
            if (Test-Path -LiteralPath $entry.link) { [System.IO.Directory]::Delete($entry.link, $false) }
        } catch { Write-Warning "Shadow copy $($entry.id) could not be removed: $($_.Exception.Message)" }
    }
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'VSS_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
