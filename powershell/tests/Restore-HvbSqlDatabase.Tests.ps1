BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Restore-HvbSqlDatabase' {
    It 'refuses a backup file that does not exist before connecting anywhere' {
        Set-HvbTestRoots @{ staging = @(); shares = @(); restore = @('Z:\hvb') }
        $r = Invoke-Script 'Restore-HvbSqlDatabase' @{ Instance = 'tcp:127.0.0.1,1'; BackupFile = 'Z:\hvb\nope.bak'; DatabaseName = 'COMPTA' }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'PATH_NOT_FOUND'
    }

    It 'refuses a backup file, data or log folder outside the roots, a share above all, before connecting anywhere' {
        Set-HvbTestRoots @{ staging = @('Z:\staging'); shares = @(); restore = @('Z:\hvb') }
        foreach ($paths in @(@{ BackupFile = '\\attacker\share\COMPTA.bak' }, @{ BackupFile = 'Z:\hvb\..\COMPTA.bak' },
                @{ BackupFile = 'Z:\staging\r1\COMPTA.bak'; DataPath = 'C:\Windows\System32' },
                @{ BackupFile = 'Z:\hvb\COMPTA.bak'; LogPath = '\\attacker\logs' })) {
            $r = Invoke-Script 'Restore-HvbSqlDatabase' (@{ Instance = 'tcp:127.0.0.1,1'; DatabaseName = 'COMPTA' } + $paths)
            $r.error.code | Should -Be 'PATH_NOT_ALLOWED'
        }
    }

    It 'restores under a new name by default (needs HVB_PESTER_SQL_INSTANCE)' -Skip:(-not $env:HVB_PESTER_SQL_INSTANCE) {
        $staging = Join-Path ([System.IO.Path]::GetTempPath()) 'hvbackup-pester'
        Set-HvbTestRoots @{ staging = @($staging); shares = @(); restore = @() }
        $backup = Invoke-Script 'Invoke-HvbSqlBackup' @{ Instance = $env:HVB_PESTER_SQL_INSTANCE; Database = @('model'); StagingPath = $staging; RunId = 'pester3'; TrustServerCertificate = $true }
        $r = Invoke-Script 'Restore-HvbSqlDatabase' @{ Instance = $env:HVB_PESTER_SQL_INSTANCE; BackupFile = $backup.databases[0].file; DatabaseName = 'model'; TrustServerCertificate = $true }
        $r.ok | Should -BeTrue
        $r.database | Should -BeLike 'model_restore_*'
    }

    It 'overwrites with -Replace only a copy it made; any other database needs -OverwriteProduction (needs HVB_PESTER_SQL_INSTANCE)' -Skip:(-not $env:HVB_PESTER_SQL_INSTANCE) {
        $staging = Join-Path ([System.IO.Path]::GetTempPath()) 'hvbackup-pester'
        Set-HvbTestRoots @{ staging = @($staging); shares = @(); restore = @() }
        $sql = @{ Instance = $env:HVB_PESTER_SQL_INSTANCE; TrustServerCertificate = $true }
        $backup = Invoke-Script 'Invoke-HvbSqlBackup' ($sql + @{ Database = @('model'); StagingPath = $staging; RunId = 'pester7' })
        $file = $backup.databases[0].file
        $copy = Invoke-Script 'Restore-HvbSqlDatabase' ($sql + @{ BackupFile = $file; DatabaseName = 'model'; TargetName = 'hvb_pester_copy' })
        $copy.ok | Should -BeTrue
        $again = Invoke-Script 'Restore-HvbSqlDatabase' ($sql + @{ BackupFile = $file; DatabaseName = 'model'; TargetName = 'hvb_pester_copy'; Replace = $true })
        $again.replaced | Should -BeTrue
        $again.overwrote_production | Should -BeFalse
        $refused = Invoke-Script 'Restore-HvbSqlDatabase' ($sql + @{ BackupFile = $file; DatabaseName = 'model'; TargetName = 'msdb'; Replace = $true; DryRun = $true })
        $refused.error.code | Should -Be 'TARGET_NOT_HVBACKUP'
        $planned = Invoke-Script 'Restore-HvbSqlDatabase' ($sql + @{ BackupFile = $file; DatabaseName = 'model'; TargetName = 'msdb'; Replace = $true; OverwriteProduction = $true; DryRun = $true })
        $planned.overwrote_production | Should -BeTrue
    }
}
