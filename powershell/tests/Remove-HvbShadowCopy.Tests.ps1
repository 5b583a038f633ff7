BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Remove-HvbShadowCopy' {
    BeforeEach {
        # %ProgramData% in a temporary folder: the mount folders are where the script makes them
        # (<ProgramData>\hvbackup\shadow\<run>-<n>), on no real host folder.
        $script:savedProgramData = $env:ProgramData
        $script:programData = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-pd-' + [guid]::NewGuid())
        $env:ProgramData = $script:programData
        $script:linkRoot = Join-Path $script:programData 'hvbackup\shadow'
        $script:mount1 = Join-Path $script:linkRoot 'r1-1'
        $script:mount10 = Join-Path $script:linkRoot 'r1-10'
        New-Item -ItemType Directory -Path $script:mount1, $script:mount10 -Force | Out-Null

        # VSS and the SMB server as lists; the order in which things go is written down.
        $script:order = @()
        $script:copies = @(
            [pscustomobject]@{ ID = '{A1}'; ExposedName = "$script:mount1\"; DeviceObject = '\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy1' },
            [pscustomobject]@{ ID = '{A10}'; ExposedName = "$script:mount10\"; DeviceObject = '\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy10' })
        $script:shares = @(
            [pscustomobject]@{ Name = 'hvb-r1-1$'; Path = $script:mount1 },
            [pscustomobject]@{ Name = 'hvb-r1-10$'; Path = $script:mount10 })
        Mock Get-CimInstance { @($script:copies | Where-Object { -not $Filter -or $Filter -eq "ID = '$($_.ID)'" }) } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
        Mock Remove-CimInstance -RemoveParameterType InputObject {
            $script:order += "copy $($InputObject.ID) (share left: $(@($script:shares | Where-Object { $_.Path -eq $script:mount1 }).Count), folder there: $(Test-Path -LiteralPath $script:mount1))"
            $script:copies = @($script:copies | Where-Object { $_.ID -ne $InputObject.ID })
        }
        Mock Get-SmbShare { @($script:shares | Where-Object { -not $Name -or $Name -contains $_.Name }) }
        Mock Remove-SmbShare { $script:order += "share $Name"; $script:shares = @($script:shares | Where-Object { $Name -notcontains $_.Name }) }

        # shadow-copies.txt, read and written through the mocks only.
        $created = [DateTime]::UtcNow.ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
        $script:recordLines = @(
            "pending`tr1`tACME/fichiers`t$created`tD:\`t$script:mount1`thvb-r1-1$",
            "{A1}`tr1`tACME/fichiers`t$created`tD:\`t$script:mount1`thvb-r1-1$",
            "pending`tr1`tACME/fichiers`t$created`tE:\`t$script:mount10`thvb-r1-10$",
            "{A10}`tr1`tACME/fichiers`t$created`tE:\`t$script:mount10`thvb-r1-10$",
            "{B7}`tr2`tACME/compta`t$created`tD:\`tC:\ProgramData\hvbackup\shadow\r2-1`thvb-r2-1$")
        Mock Test-Path { $true } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        Mock Get-Content { $script:recordLines } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        Mock Set-Content { $script:recordLines = @($Value) } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
    }
    AfterEach {
        $env:ProgramData = $script:savedProgramData
        Remove-Item -Recurse -Force $script:programData
    }

    It 'removes the share, then the copy, then the mount folder alone, and strikes its lines' {
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$') }
        $r.ok | Should -BeTrue
        $r.dry_run | Should -BeFalse
        $r.shares[0].name | Should -Be 'hvb-r1-1$'
        $r.shares[0].removed | Should -BeTrue
        $r.shadow_copies[0].id | Should -Be '{A1}'
        $r.shadow_copies[0].removed | Should -BeTrue
        $r.shadow_copies[0].already_absent | Should -BeFalse
        $r.links[0].removed | Should -BeTrue
        # No reader left when the copy goes; the folder still there then, removed after.
        $script:order | Should -Be @('share hvb-r1-1$', 'copy {A1} (share left: 0, folder there: True)')
        Test-Path -LiteralPath $script:mount1 | Should -BeFalse
        @($script:copies | ForEach-Object { $_.ID }) | Should -Be @('{A10}')
        @($script:shares | ForEach-Object { $_.Name }) | Should -Be @('hvb-r1-10$')
        @($script:recordLines | ForEach-Object { ($_ -split "`t")[0] }) | Should -Be @('pending', '{A10}', '{B7}')
    }

    It 'never confuses r1-1 with r1-10 (ShadowCopy1 vs ShadowCopy10): the folder, share and record lines of the other stay' {
        Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$') } | Out-Null
        Test-Path -LiteralPath $script:mount10 | Should -BeTrue
        Should -Invoke Remove-SmbShare -Times 0 -ParameterFilter { $Name -eq 'hvb-r1-10$' }
        Should -Invoke Remove-CimInstance -Times 1 -Exactly
        @($script:recordLines | Where-Object { $_ -like "*`t$script:mount10`t*" }).Count | Should -Be 2
    }

    It 'strikes the pending line of a copy by its mount folder' {
        Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1) } | Out-Null
        @($script:recordLines | Where-Object { $_ -like "*`t$script:mount1`t*" }).Count | Should -Be 0
    }

    It 'changes nothing with -DryRun' {
        $before = $script:recordLines
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$'); DryRun = $true }
        $r.ok | Should -BeTrue
        $r.dry_run | Should -BeTrue
        $r.shares[0].removed | Should -BeFalse
        $r.shadow_copies[0].removed | Should -BeFalse
        $r.shadow_copies[0].already_absent | Should -BeFalse
        $r.links[0].removed | Should -BeFalse
        Should -Invoke Remove-SmbShare -Times 0
        Should -Invoke Remove-CimInstance -Times 0
        Should -Invoke Set-Content -Times 0
        Test-Path -LiteralPath $script:mount1 | Should -BeTrue
        $script:recordLines | Should -Be $before
    }

    It 'is idempotent: a second call finds everything gone and says so' {
        $arguments = @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$') }
        Invoke-Script 'Remove-HvbShadowCopy' $arguments | Out-Null
        $r = Invoke-Script 'Remove-HvbShadowCopy' $arguments
        $r.ok | Should -BeTrue
        $r.shares[0].removed | Should -BeFalse
        $r.shadow_copies[0].removed | Should -BeFalse
        $r.shadow_copies[0].already_absent | Should -BeTrue
        $r.links[0].removed | Should -BeFalse
        Should -Invoke Remove-SmbShare -Times 1 -Exactly
        Should -Invoke Remove-CimInstance -Times 1 -Exactly
        @($script:recordLines).Count | Should -Be 3
    }

    It 'reports a shadow copy already gone without failing, and still removes its share and folder' {
        $script:copies = @()
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$') }
        $r.ok | Should -BeTrue
        $r.shadow_copies[0].already_absent | Should -BeTrue
        $r.shares[0].removed | Should -BeTrue
        $r.links[0].removed | Should -BeTrue
        Should -Invoke Remove-CimInstance -Times 0
    }

    It 'leaves the record file alone when there is none' {
        Mock Test-Path { $false } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        (Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}') }).ok | Should -BeTrue
        Should -Invoke Set-Content -Times 0
    }

    It 'never takes a share name that is not a per-run share of hvbackup' {
        { Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); ShareName = @('Compta$') } } | Should -Throw
        Should -Invoke Remove-SmbShare -Times 0
        Should -Invoke Remove-CimInstance -Times 0
    }

    It 'refuses <share>, not a shadow-copy share of run r1, before removing anything' -TestCases @(
        @{ share = 'hvb-r2-1$' }, @{ share = 'hvb-r1-2-1$' }, @{ share = 'hvb-r1-sql$' }, @{ share = 'hvb-r1-vm$' }
    ) {
        param($share)
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$', $share) }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'SHARE_OTHER_RUN'
        $r.error.message | Should -Match ([regex]::Escape($share))
        Should -Invoke Remove-SmbShare -Times 0
        Should -Invoke Remove-CimInstance -Times 0
        Test-Path -LiteralPath $script:mount1 | Should -BeTrue
    }

    It 'answers <link> the same whether it exists or not' -TestCases @(
        @{ link = 'C:\Windows\System32\config' }, @{ link = 'D:\Partages\nothing-here' }, @{ link = 'REL\x' }
    ) {
        param($link)
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($link) }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'PATH_NOT_ALLOWED'
        $r.error.message | Should -Be "$link is not a mount folder of shadow copy {A1} of run r1 on $env:COMPUTERNAME; hvbackup removes no other folder."
        Should -Invoke Remove-CimInstance -Times 0
    }

    It 'refuses the mount folder of another run, present or not' {
        $r2 = Join-Path $script:linkRoot 'r2-1'
        New-Item -ItemType Directory -Path $r2 | Out-Null
        (Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($r2) }).error.code | Should -Be 'PATH_NOT_ALLOWED'
        Test-Path -LiteralPath $r2 | Should -BeTrue
    }

    It 'says SHADOW_REMOVE_FAILED when VSS refuses' {
        Mock Remove-CimInstance { throw 'Access is denied.' }
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ RunId = 'r1'; ShadowId = @('{A1}'); LinkPath = @($script:mount1); ShareName = @('hvb-r1-1$') }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'SHADOW_REMOVE_FAILED'
        $r.error.message | Should -Match 'Access is denied'
        # The mount folder of a copy still there is not touched.
        Test-Path -LiteralPath $script:mount1 | Should -BeTrue
        Should -Invoke Set-Content -Times 0
    }
}
