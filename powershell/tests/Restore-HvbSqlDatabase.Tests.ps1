BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Restore-HvbSqlDatabase' {
    It 'refuses a backup file that does not exist before connecting anywhere' {
        $r = Invoke-Script 'Restore-HvbSqlDatabase' @{ Instance = 'tcp:127.0.0.1,1'; BackupFile = 'Z:\nope.bak'; DatabaseName = 'COMPTA' }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'PATH_NOT_FOUND'
    }

    It 'restores under a new name by default (needs HVB_PESTER_SQL_INSTANCE)' -Skip:(-not $env:HVB_PESTER_SQL_INSTANCE) {
        $staging = Join-Path ([System.IO.Path]::GetTempPath()) 'hvbackup-pester'
        $backup = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $env:HVB_PESTER_SQL_INSTANCE; Database = @('model'); StagingPath = $staging; RunId = 'pester3'; TrustServerCertificate = $true }
        $r = Invoke-Script 'Restore-HvbSqlDatabase' @{ Instance = $env:HVB_PESTER_SQL_INSTANCE; BackupFile = $backup.databases[0].file; DatabaseName = 'model'; TrustServerCertificate = $true }
        $r.ok | Should -BeTrue
        $r.database | Should -BeLike 'model_restore_*'
    }
}
