<#
.SYNOPSIS
    Restores a database from a .bak file, under a new name by default, its files moved.

.DESCRIPTION
    RESTORE FILELISTONLY reads the logical files of the backup; each is moved (WITH MOVE) to the
    instance's default data or log folder (or -DataPath / -LogPath) under a name made from the
    target database. The target defaults to "<DatabaseName>_restore_<yyyyMMddHHmm>", so the
    production database is never overwritten by accident; restoring over an existing database
    needs both -TargetName and -Replace. RESTORE ... WITH CHECKSUM.

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

$builder = New-Object System.Data.SqlClient.SqlConnectionStringBuilder
$builder['Data Source'] = $Instance
$builder['Integrated Security'] = $true
$builder['Application Name'] = 'hvbackup'
if ($TrustServerCertificate) { $builder['TrustServerCertificate'] = $true }
$connection = New-Object System.Data.SqlClient.SqlConnection $builder.ConnectionString

try {
    if (-not (Test-Path -LiteralPath $BackupFile)) { throw [pscustomobject]@{ Code = 'PATH_NOT_FOUND'; Message = "Backup file $BackupFile does not exist." } }
    if (-not $TargetName) { $TargetName = '{0}_restore_{1:yyyyMMddHHmm}' -f $DatabaseName, (Get-Date) }
    try { $connection.Open() } catch { throw [pscustomobject]@{ Code = 'SQL_CONNECT_FAILED'; Message = "Cannot connect to SQL Server instance '$Instance': $($_.Exception.Message)" } }
    $exists = (Invoke-Sql $connection 'SELECT COUNT(*) AS n FROM sys.databases WHERE name = @name' @{ '@name' = $TargetName }).Rows[0].n -gt 0
    if ($exists -and -not $Replace) { throw [pscustomobject]@{ Code = 'TARGET_EXISTS'; Message = "Database '$TargetName' already exists on $Instance; pick another -TargetName, or add -Replace to overwrite it." } }
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
    if ($DryRun) {
        $result = [ordered]@{ ok = $true; dry_run = $true; database = $TargetName; moves = @($moves); planned = @($statement) }
    } else {
        try { Invoke-Sql $connection $statement $parameters | Out-Null } catch { throw [pscustomobject]@{ Code = 'SQL_RESTORE_FAILED'; Message = "RESTORE DATABASE [$TargetName] failed: $($_.Exception.Message)" } }
        $result = [ordered]@{ ok = $true; database = $TargetName; instance = $Instance; moves = @($moves) }
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
