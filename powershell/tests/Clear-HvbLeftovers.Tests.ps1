BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Clear-HvbLeftovers' {
    BeforeEach {
        Mock Get-VM { @(New-FakeVm 'ERP01') }
        Mock Get-VMSnapshot { @(
                [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-crashed'; SnapshotType = 'Standard'; CreationTime = (Get-Date).AddDays(-1) },
                [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'avant mise a jour'; SnapshotType = 'Standard'; CreationTime = (Get-Date).AddDays(-9) },
                [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'Veeam running now'; SnapshotType = 'Recovery'; CreationTime = (Get-Date).AddMinutes(-5) }) }
        Mock Remove-VMSnapshot { New-FakeJob }
        Mock Get-VMHardDiskDrive { @() }
        Mock Get-CimInstance { $null } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
    }

    It "removes only hvbackup's own checkpoints, never the technician's or a young Recovery one" {
        $r = Invoke-Script 'Clear-HvbLeftovers' @{}
        @($r.checkpoints).Count | Should -Be 1
        $r.checkpoints[0].name | Should -Be 'hvbackup-crashed'
        Should -Invoke Remove-VMSnapshot -Times 1
    }

    It 'lists without removing under -DryRun' {
        $r = Invoke-Script 'Clear-HvbLeftovers' @{ DryRun = $true }
        $r.checkpoints[0].removed | Should -BeFalse
        Should -Invoke Remove-VMSnapshot -Times 0
    }

    It "removes the run shares of staging folders that are over, not a running job's nor another share" {
        $staging = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-sweep-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path (Join-Path $staging 'now') -Force | Out-Null
        Set-HvbTestRoots @{ staging = @($staging); shares = @(); restore = @() }
        try {
            Mock Get-SmbShare { @(
                    [pscustomobject]@{ Name = 'hvb-gone-sql$'; Path = (Join-Path $staging 'gone') },
                    [pscustomobject]@{ Name = 'hvb-now-vm$'; Path = (Join-Path $staging 'now') },
                    [pscustomobject]@{ Name = 'hvb-mine-sql$'; Path = (Join-Path $staging 'mine') },
                    [pscustomobject]@{ Name = 'hvb-x-sql$'; Path = 'C:\Windows' },
                    [pscustomobject]@{ Name = 'Compta$'; Path = (Join-Path $staging 'gone') }) }
            Mock Remove-SmbShare { return }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'mine'; SkipCheckpoints = $true }
            @($r.run_shares | ForEach-Object { $_.name }) | Should -Be @('hvb-gone-sql$')
            Should -Invoke Remove-SmbShare -Times 1 -ParameterFilter { $Name -eq 'hvb-gone-sql$' }
        } finally { Remove-Item -Recurse -Force $staging }
    }

}
