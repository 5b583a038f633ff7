BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Remove-HvbStaging' {
    BeforeEach {
        $script:root = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-staging-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path (Join-Path $script:root 'r1') -Force | Out-Null
        Set-Content -Path (Join-Path $script:root 'r1\COMPTA.bak') -Value ('x' * 1000)
        New-Item -ItemType Directory -Path (Join-Path $script:root 'other-run') -Force | Out-Null
        Set-HvbTestRoots @{ staging = @($script:root); shares = @(); restore = @() }
    }
    AfterEach { Remove-Item -Recurse -Force $script:root }

    It "removes the run's folder only" {
        $r = Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $script:root; RunId = 'r1' }
        $r.removed | Should -BeTrue
        $r.bytes_freed | Should -BeGreaterThan 999
        Test-Path (Join-Path $script:root 'other-run') | Should -BeTrue
    }

    It "removes the run's share before its folder, and no other share" {
        $script:order = @()
        Mock Get-SmbShare { [pscustomobject]@{ Name = $Name; Path = (Join-Path $script:root 'r1') } } -ParameterFilter { $Name -eq 'hvb-r1-sql$' }
        Mock Get-SmbShare { $null } -ParameterFilter { $Name -ne 'hvb-r1-sql$' }
        Mock Remove-SmbShare { $script:order += "share $Name" }
        $r = Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $script:root; RunId = 'r1' }
        $r.shares[0].name | Should -Be 'hvb-r1-sql$'
        $r.shares[0].removed | Should -BeTrue
        $script:order | Should -Be @('share hvb-r1-sql$')
        Should -Invoke Remove-SmbShare -Times 1 -ParameterFilter { $Name -eq 'hvb-r1-sql$' }
        Test-Path (Join-Path $script:root 'r1') | Should -BeFalse
    }

    It 'is idempotent' {
        Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $script:root; RunId = 'r1' } | Out-Null
        (Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $script:root; RunId = 'r1' }).removed | Should -BeFalse
    }

    It 'refuses a folder outside the staging roots recorded at onboarding' {
        Mock Remove-Item { throw 'must not be called' }
        foreach ($bad in @('C:\', (Split-Path $script:root), '\\attacker\share', (Join-Path $script:root '..'))) {
            (Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $bad; RunId = 'other-run' }).error.code | Should -Be 'PATH_NOT_ALLOWED'
        }
        Test-Path (Join-Path $script:root 'other-run') | Should -BeTrue
    }

    It 'refuses everything on a host never onboarded' {
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
        (Invoke-Script 'Remove-HvbStaging' @{ StagingPath = $script:root; RunId = 'r1' }).error.code | Should -Be 'ROOTS_NOT_CONFIGURED'
    }
}
