<#
.SYNOPSIS
    Native SQL Server backups of one instance's databases into a staging folder, each verified.

.DESCRIPTION
    For each database: BACKUP DATABASE ... WITH COPY_ONLY, CHECKSUM into
    <StagingPath>\<RunId>\<database>.bak, then RESTORE VERIFYONLY ... WITH CHECKSUM.
    COPY_ONLY leaves the client's own backup chain (differentials, log backups) untouched.

    Uncompressed by default (NO_COMPRESSION, said explicitly: without it BACKUP follows the
    server's 'backup compression default'): the orchestrator deduplicates the pages of one
    night's dump against the last one's, which a compressed dump prevents, and compresses what
    it sends. -Compression asks for COMPRESSION; on an edition that cannot write compressed
    backups (Web, Express) the dump is made uncompressed and the result says so
    (compression_requested true, compression false). The edition is told by
    SERVERPROPERTY('EditionID'), not 'EngineEdition': EngineEdition 2 covers Standard, Web and
    Business Intelligence alike, and Web has no backup compression (sql-docs
    editions-and-components-of-sql-server-2022.md, "RDBMS high availability").
    Database and file names are passed as SQL parameters, never pasted into the statement.

    The .bak is written by the SQL Server service, not by the caller: "the account under which
    the SQL Server service runs must have write permissions to the backup device" (sql-docs
    backup-transact-sql.md, Permissions). The run's folder, and only it, grants Modify to the
    instance's per-service SID, NT SERVICE\MSSQLSERVER or NT SERVICE\MSSQL$<instance>
    (configure-windows-service-accounts-and-permissions.md, "Service SID"), which is in the
    service's token whatever account it runs as; the result names it (service_account).

    The .bak files are read by the orchestrator as the account connected through WinRM, which
    onboarding makes no administrator (no D$): the run folder is shared as the hidden
    hvb-<RunId>-sql$, read for that account only ($PSSenderInfo.ConnectedUser), no offline
    caching, and that account gets read on the folder's ACL; databases[].exposed is
    \\<COMPUTERNAME>\hvb-<RunId>-sql$\<file>, databases[].file the local path.
    Remove-HvbStaging.ps1 removes the share, then the folder (docs/lab/shares.md).

    -Database all means the instance's user databases (database_id above 4) that can be backed
    up: not the system databases (master, model, msdb: name them to back them up), not a
    database snapshot (source_database_id set: a snapshot cannot be backed up), not a database
    in standby (is_in_standby: read-only between log restores) nor one whose state is not
    ONLINE (OFFLINE, RESTORING, RECOVERY_PENDING, SUSPECT, EMERGENCY...); sql-docs
    sys-databases-transact-sql.md. Nor a read-only database (is_read_only) the login cannot
    back up: BACKUP needs sysadmin, db_owner or db_backupoperator (backup-transact-sql.md,
    Permissions), onboarding makes the login db_backupoperator by adding its user to each
    database, and a read-only database takes no new user (it is not modified), so one that was
    read-only at onboarding has none; HAS_PERMS_BY_NAME(..., 'BACKUP DATABASE') tells. Each
    left out is listed under 'skipped' with its reason (system, snapshot, standby, not_online,
    read_only, excluded). -ExcludeDatabase removes some more.
    A database named explicitly is backed up whatever it is, system databases included, unless
    it cannot be (tempdb, a snapshot, standby, not ONLINE): its result says DB_NOT_BACKUPABLE;
    a read-only one the login cannot back up says DB_READ_ONLY.
    One database failing does not stop the others: each has its own result. The script fails
    as a whole only when the instance cannot be reached.

    Writes exactly one JSON object. -DryRun lists the databases and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$Instance,
    [string[]]$Database = @('all'),
    [string[]]$ExcludeDatabase = @(),
    [switch]$Compression,
    [Parameter(Mandatory)][string]$StagingPath,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [switch]$TrustServerCertificate,
    [int]$CommandTimeoutSeconds = 3600,
    [int]$ConnectTimeoutSeconds = 30,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

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

function Publish-HvbRunShare([string]$Folder, [string]$Name) {
    # The orchestrator reads this run's files as the account connected through WinRM, which is
    # no administrator (no D$): a hidden share of the run folder, read for that account only,
    # no offline caching; and a read ACE on the folder itself, since a share's ACL alone opens
    # nothing NTFS refuses. Idempotent: the same share of the same folder is kept.
    $reader = if ($PSSenderInfo -and $PSSenderInfo.ConnectedUser) { $PSSenderInfo.ConnectedUser } else { "$env:USERDOMAIN\$env:USERNAME" }
    try {
        $folderInfo = New-Object System.IO.DirectoryInfo $Folder
        $acl = $folderInfo.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($reader, 'ReadAndExecute', 'ContainerInherit, ObjectInherit', 'None', 'Allow')))
        $folderInfo.SetAccessControl($acl)
        $current = Get-SmbShare -Name $Name -ErrorAction SilentlyContinue
        if ($current -and $current.Path.TrimEnd('\') -ne $Folder.TrimEnd('\')) { Remove-SmbShare -Name $Name -Force }
        if (-not $current -or $current.Path.TrimEnd('\') -ne $Folder.TrimEnd('\')) {
            New-SmbShare -Name $Name -Path $Folder -ReadAccess $reader -CachingMode None -FolderEnumerationMode AccessBased -Description "hvbackup run folder" | Out-Null
        }
    } catch { throw [pscustomobject]@{ Code = 'SHARE_FAILED'; Message = "Cannot share $Folder as $Name to ${reader}: $($_.Exception.Message)" } }
    return "\\$env:COMPUTERNAME\$Name"
}

function Get-StagingVolume([string]$Path) {
    # The volume that holds $Path: the longest volume root (drive letter or mount point) that
    # starts it (a folder on a volume mounted at D:\Mounts\Staging\ is on that volume, which
    # has no drive letter of its own). A share (\\server\share) is refused: the host writes as
    # its computer account there, and no volume of this host says how much room it has.
    if ($Path -like '\\*') { throw [pscustomobject]@{ Code = 'BAD_PARAMETER'; Message = "Staging $Path is a network share; give a folder on a local volume of $env:COMPUTERNAME." } }
    $full = [System.IO.Path]::GetFullPath($Path).TrimEnd('\') + '\'
    $volume = @(Get-CimInstance -ClassName Win32_Volume | Where-Object { $_.Name -and $full.StartsWith($_.Name, [System.StringComparison]::OrdinalIgnoreCase) } | Sort-Object { $_.Name.Length } -Descending) | Microsoft.PowerShell.Utility\Select-Object -First 1
    if (-not $volume) { throw [pscustomobject]@{ Code = 'PATH_NOT_FOUND'; Message = "No volume of $env:COMPUTERNAME holds $Path." } }
    return $volume
}

function Get-SafeFileName([string]$Name) {
    $invalid = [System.IO.Path]::GetInvalidFileNameChars()
    return -join ($Name.ToCharArray() | ForEach-Object { if ($invalid -contains $_) { '_' } else { $_ } })
}

$builder = New-Object System.Data.SqlClient.SqlConnectionStringBuilder
$builder['Data Source'] = $Instance
$builder['Integrated Security'] = $true
$builder['Connect Timeout'] = $ConnectTimeoutSeconds
$builder['Application Name'] = 'hvbackup'
if ($TrustServerCertificate) { $builder['TrustServerCertificate'] = $true }
$connection = New-Object System.Data.SqlClient.SqlConnection $builder.ConnectionString

try {
    try { $connection.Open() } catch { throw [pscustomobject]@{ Code = 'SQL_CONNECT_FAILED'; Message = "Cannot connect to SQL Server instance '$Instance': $($_.Exception.InnerException.Message)$($_.Exception.Message)" } }
    $server = (Invoke-Sql $connection "SELECT CAST(SERVERPROPERTY('EditionID') AS bigint) AS edition_id, CAST(SERVERPROPERTY('Edition') AS nvarchar(128)) AS edition, ISNULL(CAST(SERVERPROPERTY('InstanceName') AS nvarchar(128)), N'') AS instance_name").Rows[0]
    $service = if ("$($server.instance_name)") { "NT SERVICE\MSSQL`$$($server.instance_name)" } else { 'NT SERVICE\MSSQLSERVER' }
    # Editions that write compressed backups, by EditionID (serverproperty-transact-sql.md):
    # Enterprise, Enterprise core-based, Evaluation, Business Intelligence, Developer, Standard.
    # Not Web (1293598313) nor Express (-1592396055, -133711905); an unknown edition is not
    # assumed to compress (the dump is then uncompressed, never failed).
    $canCompress = [int64]$server.edition_id -in @(1804890536, 1872460670, 610778273, 284895786, -2117995310, -1534726760)
    $compress = [bool]$Compression -and $canCompress
    $option = if ($compress) { ', COMPRESSION' } elseif ($canCompress) { ', NO_COMPRESSION' } else { '' }
    $catalog = Invoke-Sql $connection @'
SELECT d.name, d.database_id, d.state_desc, CAST(d.is_in_standby AS int) AS is_in_standby,
       CASE WHEN d.source_database_id IS NULL THEN 0 ELSE 1 END AS is_snapshot,
       CAST(d.is_read_only AS int) AS is_read_only,
       ISNULL(HAS_PERMS_BY_NAME(d.name, N'DATABASE', N'BACKUP DATABASE'), 0) AS can_backup,
       CAST(ISNULL(SUM(CAST(f.size AS bigint)), 0) * 8192 AS bigint) AS size_bytes
FROM sys.databases d LEFT JOIN sys.master_files f ON f.database_id = d.database_id
GROUP BY d.name, d.database_id, d.state_desc, d.is_in_standby, d.source_database_id, d.is_read_only
'@
    $rows = @{}
    foreach ($row in $catalog.Rows) { $rows[$row.name] = $row }
    # Why a database cannot be backed up at all, or $null.
    function Get-Unfit($row) {
        if ($row.name -eq 'tempdb') { return 'tempdb' }
        if ([int]$row.is_snapshot) { return 'snapshot' }
        if ($row.state_desc -ne 'ONLINE') { return 'not_online' }
        if ([int]$row.is_in_standby) { return 'standby' }
        return $null
    }
    $skipped = @()
    if ($Database -contains 'all') {
        $wanted = @()
        foreach ($name in @($rows.Keys | Sort-Object)) {
            $row = $rows[$name]
            if ($name -eq 'tempdb') { continue }
            $reason = Get-Unfit $row
            if (-not $reason -and [int]$row.database_id -le 4) { $reason = 'system' }
            if (-not $reason -and [int]$row.is_read_only -and -not [int]$row.can_backup) { $reason = 'read_only' }
            if (-not $reason -and $ExcludeDatabase -contains $name) { $reason = 'excluded' }
            if ($reason) { $skipped += [ordered]@{ name = $name; reason = $reason; state = "$($row.state_desc)" } }
            else { $wanted += $name }
        }
    } else {
        $wanted = @($Database | Where-Object { $ExcludeDatabase -notcontains $_ })
    }
    Assert-HvbRoot $StagingPath 'staging' | Out-Null
    $target = Join-Path $StagingPath $RunId

    if ($DryRun) {
        $result = [ordered]@{ ok = $true; dry_run = $true; instance = $Instance; compression = $compress; compression_requested = [bool]$Compression; staging = $target; service_account = $service; planned = @($wanted | ForEach-Object { "BACKUP DATABASE [$_] WITH COPY_ONLY, CHECKSUM$option then RESTORE VERIFYONLY" }); skipped = @($skipped) }
    } else {
        New-Item -ItemType Directory -Force -Path $target | Out-Null
        try {
            $folder = New-Object System.IO.DirectoryInfo $target
            $acl = $folder.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
            $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($service, 'Modify', 'ContainerInherit, ObjectInherit', 'None', 'Allow')))
            $folder.SetAccessControl($acl)
        } catch { throw [pscustomobject]@{ Code = 'STAGING_GRANT_FAILED'; Message = "Cannot give the SQL Server service ($service) write access to ${target}: $($_.Exception.Message)" } }
        $share = "hvb-$RunId-sql`$"
        $unc = Publish-HvbRunShare $target $share
        $databases = foreach ($name in $wanted) {
            $entry = [ordered]@{ name = $name; file = $null; exposed = $null; size_bytes = 0; compressed = $compress; verified = $false; duration_s = 0; error = $null }
            $started = Get-Date
            try {
                if (-not $rows.ContainsKey($name)) { throw [pscustomobject]@{ Code = 'DB_NOT_FOUND'; Message = "Database '$name' does not exist on $Instance." } }
                $unfit = Get-Unfit $rows[$name]
                if ($unfit) {
                    $why = switch ($unfit) {
                        'tempdb' { 'tempdb cannot be backed up' }
                        'snapshot' { 'it is a database snapshot, which cannot be backed up (back up its source database)' }
                        'standby' { 'it is in standby (read-only between log restores) and cannot be backed up until its restore sequence ends' }
                        default { "it is $($rows[$name].state_desc): only an ONLINE database can be backed up" }
                    }
                    throw [pscustomobject]@{ Code = 'DB_NOT_BACKUPABLE'; Message = "Database '$name' on ${Instance}: $why." }
                }
                if ([int]$rows[$name].is_read_only -and -not [int]$rows[$name].can_backup) {
                    throw [pscustomobject]@{ Code = 'DB_READ_ONLY'; Message = "Database '$name' on $Instance is read-only and this login may not back it up: onboarding could not add its user there (a read-only database takes no new user). A DBA sets it READ_WRITE, reruns Initialize-HvbHost.ps1 and sets it READ_ONLY again, or removes it from databases." }
                }
                $size = [int64]$rows[$name].size_bytes
                $volume = Get-StagingVolume $target
                $free = [int64]$volume.FreeSpace
                if ($free -lt $size) { throw [pscustomobject]@{ Code = 'STAGING_FULL'; Message = "The staging volume $($volume.Name) of $target has $free bytes free; '$name' may need up to $size." } }
                $file = Join-Path $target ((Get-SafeFileName $name) + '.bak')
                $options = "COPY_ONLY, CHECKSUM$option, INIT, FORMAT"
                try {
                    Invoke-Sql $connection "BACKUP DATABASE @db TO DISK = @file WITH $options" @{ '@db' = $name; '@file' = $file } | Out-Null
                } catch { throw [pscustomobject]@{ Code = 'SQL_BACKUP_FAILED'; Message = "BACKUP DATABASE [$name] failed: $($_.Exception.Message)" } }
                try {
                    Invoke-Sql $connection 'RESTORE VERIFYONLY FROM DISK = @file WITH CHECKSUM' @{ '@file' = $file } | Out-Null
                } catch { throw [pscustomobject]@{ Code = 'SQL_VERIFY_FAILED'; Message = "RESTORE VERIFYONLY of [$name] failed: the backup file is not usable: $($_.Exception.Message)" } }
                $entry.file = $file
                $entry.exposed = "$unc\$(Split-Path -Leaf $file)"
                $entry.size_bytes = [int64](Get-Item -LiteralPath $file).Length
                $entry.verified = $true
            } catch {
                $detail = $_.TargetObject
                $entry.error = [ordered]@{
                    code    = if ($detail.Code) { $detail.Code } else { 'SQL_BACKUP_FAILED' }
                    message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
                }
            }
            $entry.duration_s = [math]::Round(((Get-Date) - $started).TotalSeconds, 1)
            $entry
        }
        $result = [ordered]@{ ok = $true; instance = $Instance; edition = "$($server.edition)"; compression = $compress; compression_requested = [bool]$Compression; staging = $target; service_account = $service; share = $share; databases = @($databases); skipped = @($skipped) }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'SQL_BACKUP_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
} finally {
    $connection.Dispose()
}
$result | ConvertTo-Json -Compress -Depth 8
