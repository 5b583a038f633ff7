<#
.SYNOPSIS
    Restores a database from a .bak file, under a new name by default, its files moved.

.DESCRIPTION
    RESTORE FILELISTONLY reads the logical files of the backup; each is moved (WITH MOVE) to the
    instance's default data or log folder (or -DataPath / -LogPath) under a name made from the
    target database. The target defaults to "<DatabaseName>_restore_<yyyyMMddHHmm>", so the
    production database is never overwritten by accident. RESTORE ... WITH CHECKSUM.

    Overwriting an existing database: -Replace overwrites only a database an earlier restore
    made beside the original (it carries the extended property 'hvbackup.restored', which
    this script sets after restoring under another name). Any other database (production, or
    one this login cannot read) also needs -OverwriteProduction, a distinct switch that the
    result reports (overwrote_production) and the JEA transcript records; after such a
    restore the database carries no marker, so the next -Replace alone refuses it again.

    -BackupFile must lie inside an onboarded restore or staging root, -DataPath and -LogPath
    inside a restore root (PATH_NOT_ALLOWED; local paths only: a \\server\share backup file
    would make the host authenticate to that server).

    Writes exactly one JSON object. -DryRun reports the statement's plan and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$Instance,
    [Parameter(Mandatory)][string]$BackupFile,
    [Parameter(Mandatory)][string]$DatabaseName,
    [string]$TargetName,
    [string]$DataPath,
    [string]$LogPath,
    [switch]$Replace,
    [switch]$OverwriteProduction,
    [switch]$TrustServerCertificate,
    [int]$CommandTimeoutSeconds = 3600,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'

function Invoke-Sql($Connection, [string]$Text, [hashtable]$Parameters = @{}) {
    $command = $Connection.CreateCommand()
    $command.CommandText = $Text
    $command.CommandTimeout = $CommandTimeoutSeconds
    foreach ($key in $Parameters.Keys) { [void]$command.Parameters.AddWithValue($key, $Parameters[$key]) }
    $table = New-Object System.Data.DataTable
    $reader = $command.ExecuteReader()
    try { $table.Load($reader) } finally { $reader.Close() }
    return , $table
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

$builder = New-Object System.Data.SqlClient.SqlConnectionStringBuilder
$builder['Data Source'] = $Instance
$builder['Integrated Security'] = $true
$builder['Application Name'] = 'hvbackup'
if ($TrustServerCertificate) { $builder['TrustServerCertificate'] = $true }
$connection = New-Object System.Data.SqlClient.SqlConnection $builder.ConnectionString

try {
    # A fresh dump in staging, or one brought back from a baie into a restore folder.
    $BackupFile = try { Assert-HvbRoot $BackupFile 'restore' } catch { if ($_.TargetObject.Code -ne 'PATH_NOT_ALLOWED') { throw }; Assert-HvbRoot $BackupFile 'staging' }
    if ($DataPath) { $DataPath = Assert-HvbRoot $DataPath 'restore' }
    if ($LogPath) { $LogPath = Assert-HvbRoot $LogPath 'restore' }
    if (-not (Test-Path -LiteralPath $BackupFile)) { throw [pscustomobject]@{ Code = 'PATH_NOT_FOUND'; Message = "Backup file $BackupFile does not exist." } }
    if (-not $TargetName) { $TargetName = '{0}_restore_{1:yyyyMMddHHmm}' -f $DatabaseName, (Get-Date) }
    try { $connection.Open() } catch { throw [pscustomobject]@{ Code = 'SQL_CONNECT_FAILED'; Message = "Cannot connect to SQL Server instance '$Instance': $($_.Exception.Message)" } }
    $exists = (Invoke-Sql $connection 'SELECT COUNT(*) AS n FROM sys.databases WHERE name = @name' @{ '@name' = $TargetName }).Rows[0].n -gt 0
    if ($exists -and -not $Replace) { throw [pscustomobject]@{ Code = 'TARGET_EXISTS'; Message = "Database '$TargetName' already exists on $Instance; pick another -TargetName, or add -Replace to overwrite it." } }
    $ours = $false
    if ($exists) {
        try {
            $found = (Invoke-Sql $connection "DECLARE @q nvarchar(max) = N'SELECT COUNT(*) AS n FROM ' + QUOTENAME(@name) + N'.sys.extended_properties WHERE class = 0 AND name = N''hvbackup.restored'''; EXEC sp_executesql @q" @{ '@name' = $TargetName }).Rows
            $ours = [int]$found[0].n -gt 0
        } catch { $ours = $false }  # a database this login cannot even read is not one it made
        if (-not $ours -and -not $OverwriteProduction) { throw [pscustomobject]@{ Code = 'TARGET_NOT_HVBACKUP'; Message = "Database '$TargetName' on $Instance was not made by an hvbackup restore: it may be production. Overwriting it needs -Replace -OverwriteProduction (recorded), after a copy of the current one." } }
    }
    $overwroteProduction = $exists -and -not $ours
    # Marked as ours only when it is a copy beside the original, never what replaced production.
    $mark = ($TargetName -ne $DatabaseName) -and -not $overwroteProduction
    $defaults = (Invoke-Sql $connection "SELECT CAST(SERVERPROPERTY('InstanceDefaultDataPath') AS nvarchar(400)) AS data, CAST(SERVERPROPERTY('InstanceDefaultLogPath') AS nvarchar(400)) AS log").Rows[0]
    $dataDir = if ($DataPath) { $DataPath } else { $defaults.data }
    $logDir = if ($LogPath) { $LogPath } else { $defaults.log }
    $files = Invoke-Sql $connection 'RESTORE FILELISTONLY FROM DISK = @file' @{ '@file' = $BackupFile }
    $moves = @()
    $parameters = @{ '@target' = $TargetName; '@file' = $BackupFile }
    $index = 0
    foreach ($row in $files.Rows) {
        $index++
        $extension = if ($row.Type -eq 'L') { '.ldf' } elseif ($index -eq 1) { '.mdf' } else { '.ndf' }
        $folder = if ($row.Type -eq 'L') { $logDir } else { $dataDir }
        $physical = Join-Path $folder ("{0}_{1}{2}" -f $TargetName, $index, $extension)
        $parameters["@l$index"] = $row.LogicalName
        $parameters["@p$index"] = $physical
        $moves += [ordered]@{ logical = $row.LogicalName; to = $physical }
    }
    $moveClause = (1..$index | ForEach-Object { "MOVE @l$_ TO @p$_" }) -join ', '
    $statement = "RESTORE DATABASE @target FROM DISK = @file WITH CHECKSUM, RECOVERY, $moveClause$(if ($Replace) { ', REPLACE' })"
    $marker = if ($mark) {
        "IF NOT EXISTS (SELECT 1 FROM sys.extended_properties WHERE class = 0 AND name = N''hvbackup.restored'') EXEC sys.sp_addextendedproperty @name = N''hvbackup.restored'', @value = @v"
    } else {
        "IF EXISTS (SELECT 1 FROM sys.extended_properties WHERE class = 0 AND name = N''hvbackup.restored'') EXEC sys.sp_dropextendedproperty @name = N''hvbackup.restored''"
    }
    $markStatement = "DECLARE @q nvarchar(max) = N'USE ' + QUOTENAME(@target) + N'; $marker'; EXEC sp_executesql @q, N'@v nvarchar(400)', @v = @value"
    if ($DryRun) {
        $result = [ordered]@{ ok = $true; dry_run = $true; database = $TargetName; moves = @($moves); planned = @($statement); replaced = $exists; overwrote_production = $overwroteProduction }
    } else {
        try { Invoke-Sql $connection $statement $parameters | Out-Null } catch { throw [pscustomobject]@{ Code = 'SQL_RESTORE_FAILED'; Message = "RESTORE DATABASE [$TargetName] failed: $($_.Exception.Message)" } }
        Invoke-Sql $connection $markStatement @{ '@target' = $TargetName; '@value' = "restored from $DatabaseName ($([System.IO.Path]::GetFileName($BackupFile))) on $((Get-Date).ToUniversalTime().ToString('o', [System.Globalization.CultureInfo]::InvariantCulture))" } | Out-Null
        $result = [ordered]@{ ok = $true; database = $TargetName; instance = $Instance; moves = @($moves); replaced = $exists; overwrote_production = $overwroteProduction }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'SQL_RESTORE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
} finally {
    $connection.Dispose()
}
$result | ConvertTo-Json -Compress -Depth 8
