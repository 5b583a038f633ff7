<#
.SYNOPSIS
    Describes a Hyper-V host for hvbackup. Reads only; changes nothing.

.DESCRIPTION
    Lists the host's version, every VM with its disks (and their full parent chain), its
    checkpoints and the health of its backup integration service (matched by ID, never by
    localized name), the SQL Server instances and databases reachable on this machine, the
    fixed volumes with their free space, and anything hvbackup left behind: checkpoints
    named with the tool prefix, old Recovery checkpoints, and recorded shadow copies.

    Writes exactly one JSON object: {"ok": true, ...} or {"ok": false, "error": {...}}.
#>
[CmdletBinding()]
param(
    [ValidatePattern('^[A-Za-z0-9]+$')][string]$Prefix = 'hvbackup',
    [int]$RecoveryOlderThanHours = 24,
    [switch]$SkipSql,
    [int]$SqlConnectTimeoutSeconds = 15,
    [switch]$TrustServerCertificate
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'
$VssIntegrationId = '5CED1297-4598-4915-A5FC-AD21BB4D02A4'
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

function ConvertTo-UtcText([datetime]$When) {
    return $When.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", [System.Globalization.CultureInfo]::InvariantCulture)
}

function Get-DiskChain([string]$Path) {
    # The file itself, then each parent up to the base disk.
    $chain = @()
    $current = $Path
    while ($current) {
        $chain += $current
        $vhd = Get-VHD -Path $current
        $current = $vhd.ParentPath
        if ($chain.Count -gt 64) { throw [pscustomobject]@{ Code = 'DISK_CHAIN_LOOP'; Message = "The parent chain of $Path does not end." } }
    }
    return , $chain
}

function Test-PassThrough($Drive) {
    # A pass-through disk has a DiskNumber, and a Path that describes the physical disk
    # ("Disk 2 30.00 GB Bus 0 Lun 1 Target 0"): Get-VHD cannot open it.
    return ($null -ne $Drive.DiskNumber) -or ("$($Drive.Path)" -notmatch '\.a?vhdx?$')
}

function Get-VmDescription($Vm) {
    $drives = @(Get-VMHardDiskDrive -VM $Vm)
    $passThrough = @($drives | Where-Object { $_.Path -and (Test-PassThrough $_) } | ForEach-Object { "$($_.ControllerType) $($_.ControllerNumber):$($_.ControllerLocation) $($_.Path)" })
    $disks = foreach ($drive in $drives) {
        if (-not $drive.Path -or (Test-PassThrough $drive)) { continue }  # no file to read
        $vhd = Get-VHD -Path $drive.Path
        [ordered]@{
            controller      = "$($drive.ControllerType) $($drive.ControllerNumber):$($drive.ControllerLocation)"
            path            = $drive.Path
            chain           = Get-DiskChain $drive.Path
            size_bytes      = [int64]$vhd.Size
            file_size_bytes = [int64]$vhd.FileSize
            format          = "$($vhd.VhdFormat)"
        }
    }
    $checkpoints = foreach ($snap in @(Get-VMSnapshot -VM $Vm)) {
        [ordered]@{
            id          = "$($snap.Id)"
            name        = $snap.Name
            type        = "$($snap.SnapshotType)"
            created_utc = ConvertTo-UtcText $snap.CreationTime
            is_hvbackup = $snap.Name -like "$Prefix-*"
        }
    }
    # Remove-VMSnapshot returns while the merge goes on: a VM with no checkpoint that still
    # writes to an .avhdx has a merge running or stuck, which no checkpoint list shows.
    $unmerged = if (@($checkpoints).Count -eq 0) { @($disks | Where-Object { $_.path -like '*.avhdx' } | ForEach-Object { $_.path }) } else { @() }
    $vss = Get-VMIntegrationService -VM $Vm | Where-Object { $_.Id -like "*$VssIntegrationId" } | Microsoft.PowerShell.Utility\Select-Object -First 1
    [ordered]@{
        id              = "$($Vm.Id)"
        name            = $Vm.Name
        state           = "$($Vm.State)"
        generation      = [int]$Vm.Generation
        version         = "$($Vm.Version)"
        cpu_count       = [int]$Vm.ProcessorCount
        memory_bytes    = [int64]$Vm.MemoryStartup
        checkpoint_type = "$($Vm.CheckpointType)"
        config_path     = $Vm.ConfigurationLocation
        disks           = @($disks)
        checkpoints     = @($checkpoints)
        passthrough_disks = $passThrough
        unmerged_files  = @($unmerged)
        vss             = [ordered]@{
            present = [bool]$vss
            enabled = [bool]($vss -and $vss.Enabled)
            healthy = [bool]($vss -and $vss.Enabled -and "$($vss.PrimaryOperationalStatus)" -eq 'Ok')
            status  = if ($vss) { "$($vss.PrimaryOperationalStatus)" } else { 'Missing' }
        }
    }
}

function Get-SqlInstances {
    $key = 'HKLM:\SOFTWARE\Microsoft\Microsoft SQL Server\Instance Names\SQL'
    if (-not (Test-Path $key)) { return @() }
    $names = (Get-Item $key).GetValueNames()
    foreach ($name in $names) {
        $server = if ($name -eq 'MSSQLSERVER') { $env:COMPUTERNAME } else { "$env:COMPUTERNAME\$name" }
        $entry = [ordered]@{ instance = $server; version = ''; edition = ''; engine_edition = 0; supports_compression = $false; databases = @() }
        $builder = New-Object System.Data.SqlClient.SqlConnectionStringBuilder
        $builder['Data Source'] = $server
        $builder['Integrated Security'] = $true
        $builder['Connect Timeout'] = $SqlConnectTimeoutSeconds
        if ($TrustServerCertificate) { $builder['TrustServerCertificate'] = $true }
        $connection = New-Object System.Data.SqlClient.SqlConnection $builder.ConnectionString
        try {
            $connection.Open()
            $command = $connection.CreateCommand()
            $command.CommandTimeout = 60
            $command.CommandText = "SELECT CAST(SERVERPROPERTY('ProductVersion') AS nvarchar(64)), CAST(SERVERPROPERTY('Edition') AS nvarchar(128)), CAST(SERVERPROPERTY('EngineEdition') AS int), CAST(SERVERPROPERTY('EditionID') AS bigint)"
            $reader = $command.ExecuteReader()
            [void]$reader.Read()
            $entry.version = $reader.GetString(0)
            $entry.edition = $reader.GetString(1)
            $entry.engine_edition = $reader.GetInt32(2)
            $editionId = $reader.GetInt64(3)
            $reader.Close()
            # Backup compression by EditionID, as Invoke-HvbSqlBackup decides it: EngineEdition 2
            # is Standard, Web and BI alike, and Web cannot compress backups.
            $entry.supports_compression = $editionId -in @(1804890536, 1872460670, 610778273, 284895786, -2117995310, -1534726760)
            $command.CommandText = @'
SELECT d.name, d.recovery_model_desc, d.state_desc,
       CAST(SUM(CAST(f.size AS bigint)) * 8192 AS bigint)
FROM sys.databases d JOIN sys.master_files f ON f.database_id = d.database_id
WHERE d.name <> 'tempdb'
GROUP BY d.name, d.recovery_model_desc, d.state_desc
ORDER BY d.name
'@
            $reader = $command.ExecuteReader()
            $dbs = while ($reader.Read()) {
                [ordered]@{ name = $reader.GetString(0); recovery_model = $reader.GetString(1); state = $reader.GetString(2); size_bytes = $reader.GetInt64(3) }
            }
            $reader.Close()
            $entry.databases = @($dbs)
        } catch {
            $entry.error = [ordered]@{ code = 'SQL_CONNECT_FAILED'; message = $_.Exception.Message }
        } finally {
            $connection.Dispose()
        }
        $entry
    }
}

try {
    $os = Get-CimInstance -ClassName Win32_OperatingSystem
    $vmms = Get-Item (Join-Path $env:SystemRoot 'System32\vmms.exe')
    $vms = @(Get-VM | Sort-Object Name | ForEach-Object { Get-VmDescription $_ })

    $volumes = foreach ($volume in @(Get-CimInstance -ClassName Win32_Volume -Filter 'DriveType = 3')) {
        if (-not $volume.DriveLetter) { continue }
        [ordered]@{ drive = $volume.DriveLetter; label = "$($volume.Label)"; size_bytes = [int64]$volume.Capacity; free_bytes = [int64]$volume.FreeSpace }
    }

    $cutoff = (Get-Date).AddHours(-$RecoveryOlderThanHours)
    $leftCheckpoints = foreach ($vm in $vms) {
        foreach ($cp in $vm.checkpoints) {
            $isOldRecovery = $cp.type -eq 'Recovery' -and ([datetime]$cp.created_utc) -lt $cutoff
            if ($cp.is_hvbackup -or $isOldRecovery) {
                [ordered]@{ vm = $vm.name; id = $cp.id; name = $cp.name; type = $cp.type; created_utc = $cp.created_utc }
            }
        }
    }
    # A record line: "<id or pending>`t<run>`t<owner>`t<created>`t<volume>`t<mount>`t<share>"
    # (an older line holds the ID alone): the ID is the first field.
    $recorded = @(Use-HvbShadowRecord { if (Test-Path $RecordFile) { @(Get-Content $RecordFile | Where-Object { $_ }) } } |
        ForEach-Object { @($_ -split "`t")[0] } | Where-Object { $_ -ne 'pending' })
    $leftShadows = foreach ($shadow in @(Get-CimInstance -ClassName Win32_ShadowCopy)) {
        if ($recorded -contains $shadow.ID) {
            [ordered]@{ id = $shadow.ID; volume = $shadow.VolumeName; created_utc = ConvertTo-UtcText $shadow.InstallDate }
        }
    }

    $result = [ordered]@{
        ok       = $true
        host     = [ordered]@{
            name           = $env:COMPUTERNAME
            os_version     = "$($os.Caption) $($os.Version)"
            hyperv_version = "$($vmms.VersionInfo.ProductVersion)"
            time_utc       = ConvertTo-UtcText (Get-Date)
        }
        vms      = @($vms)
        sql      = if ($SkipSql) { @() } else { @(Get-SqlInstances) }
        volumes  = @($volumes)
        leftovers = [ordered]@{ checkpoints = @($leftCheckpoints); shadow_copies = @($leftShadows) }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } elseif ($_.Exception -is [System.Management.Automation.CommandNotFoundException]) { 'HYPERV_MODULE_MISSING' } else { 'INVENTORY_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
