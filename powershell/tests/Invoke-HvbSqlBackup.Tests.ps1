BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')
    # SQL Server is not mocked through cmdlets but through .NET: these tests need a local
    # SQL Server Express (or Developer) instance, named by HVB_PESTER_SQL_INSTANCE.
    $script:instance = $env:HVB_PESTER_SQL_INSTANCE
    $script:staging = Join-Path ([System.IO.Path]::GetTempPath()) 'hvbackup-pester'
}

Describe 'Invoke-HvbSqlBackup' -Skip:(-not $env:HVB_PESTER_SQL_INSTANCE) {
    BeforeEach { Set-HvbTestRoots @{ staging = @($script:staging, $env:TEMP); shares = @(); restore = @() } }

    It 'backs up master with COPY_ONLY and CHECKSUM and verifies it' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('master'); StagingPath = $script:staging; RunId = 'pester1'; TrustServerCertificate = $true }
        $r.ok | Should -BeTrue
        $r.databases[0].verified | Should -BeTrue
        Test-Path $r.databases[0].file | Should -BeTrue
        $r.compression | Should -BeFalse
        $r.compression_requested | Should -BeFalse
    }

    It 'compresses only when asked, and says when the edition cannot' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('master'); StagingPath = $script:staging; RunId = 'pester3'; TrustServerCertificate = $true; Compression = $true }
        $r.compression_requested | Should -BeTrue
        $r.databases[0].compressed | Should -Be $r.compression
        $r.databases[0].verified | Should -BeTrue
    }

    It 'leaves the system databases out of all and says so, backs them up when named' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('all'); StagingPath = $script:staging; RunId = 'pester4'; TrustServerCertificate = $true; DryRun = $true }
        @($r.skipped | Where-Object reason -EQ 'system' | ForEach-Object name) | Sort-Object | Should -Be @('master', 'model', 'msdb')
        $r.planned | Where-Object { $_ -like '*[[]master]*' -or $_ -like '*[[]tempdb]*' } | Should -BeNullOrEmpty
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('model', 'tempdb'); StagingPath = $script:staging; RunId = 'pester5'; TrustServerCertificate = $true }
        ($r.databases | Where-Object name -EQ 'model').verified | Should -BeTrue
        ($r.databases | Where-Object name -EQ 'tempdb').error.code | Should -Be 'DB_NOT_BACKUPABLE'
    }

    It 'gives the SQL Server service SID Modify on the run folder, and only there' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('model'); StagingPath = $script:staging; RunId = 'pester6'; TrustServerCertificate = $true }
        $r.service_account | Should -Match '^NT SERVICE\\MSSQL(SERVER|\$.+)$'
        @((Get-Acl -LiteralPath $r.staging).Access | ForEach-Object { $_.IdentityReference.Value }) | Should -Contain $r.service_account
        @((Get-Acl -LiteralPath $script:staging).Access | Where-Object { -not $_.IsInherited } | ForEach-Object { $_.IdentityReference.Value }) | Should -Not -Contain $r.service_account
        $r.databases[0].verified | Should -BeTrue
    }

    It 'shares the run folder to the connected account only and gives the share paths' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('model'); StagingPath = $script:staging; RunId = 'pester7'; TrustServerCertificate = $true }
        $r.share | Should -Be 'hvb-pester7-sql$'
        $r.databases[0].exposed | Should -Be "\\$env:COMPUTERNAME\hvb-pester7-sql$\model.bak"
        $access = @(Get-SmbShareAccess -Name $r.share)
        $access.Count | Should -Be 1
        $access[0].AccessRight | Should -Be 'Read'
        (Get-SmbShare -Name $r.share).CachingMode | Should -Be 'None'
        Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $script:staging; RunId = 'pester7' } | Out-Null
        Get-SmbShare -Name $r.share -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }

    It 'backs up a read-only database the login may back up (sysadmin here), in all and named' {
        # A login without a user there gets skipped reason read_only / DB_READ_ONLY instead:
        # that case needs a second, non-sysadmin login (tests/hosts/test_simsql.py models it).
        $c = New-Object System.Data.SqlClient.SqlConnection "Data Source=$($script:instance);Integrated Security=true;TrustServerCertificate=true"
        $c.Open()
        $cmd = $c.CreateCommand()
        $cmd.CommandText = "IF DB_ID(N'hvb_pester_ro') IS NULL CREATE DATABASE hvb_pester_ro; ALTER DATABASE hvb_pester_ro SET READ_ONLY;"
        [void]$cmd.ExecuteNonQuery()
        try {
            $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('all'); StagingPath = $script:staging; RunId = 'pester8'; TrustServerCertificate = $true; DryRun = $true }
            @($r.skipped | ForEach-Object name) | Should -Not -Contain 'hvb_pester_ro'
            $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('hvb_pester_ro'); StagingPath = $script:staging; RunId = 'pester8'; TrustServerCertificate = $true }
            $r.databases[0].verified | Should -BeTrue
        } finally {
            $cmd.CommandText = "ALTER DATABASE hvb_pester_ro SET READ_WRITE; DROP DATABASE hvb_pester_ro;"
            [void]$cmd.ExecuteNonQuery()
            $c.Dispose()
        }
    }

    It 'reports an unknown database without failing the others' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $script:instance; Database = @('master', 'nope'); StagingPath = $script:staging; RunId = 'pester2'; TrustServerCertificate = $true }
        ($r.databases | Where-Object name -EQ 'nope').error.code | Should -Be 'DB_NOT_FOUND'
        ($r.databases | Where-Object name -EQ 'master').verified | Should -BeTrue
    }
}

Describe 'Invoke-HvbSqlBackup without SQL Server' {
    It 'says SQL_CONNECT_FAILED for an instance that does not answer' {
        $r = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = 'tcp:127.0.0.1,1'; StagingPath = $env:TEMP; RunId = 'r1'; ConnectTimeoutSeconds = 2 }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'SQL_CONNECT_FAILED'
    }
}
