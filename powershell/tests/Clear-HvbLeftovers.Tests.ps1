BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')

    function New-TestRecord([string]$Id, [string]$Run, [string]$Owner, [double]$HoursAgo, [string]$Mount, [string]$Share) {
        # A line of shadow-copies.txt as New-HvbShadowCopy.ps1 writes it.
        $created = [DateTime]::UtcNow.AddHours(-$HoursAgo).ToString('o', [System.Globalization.CultureInfo]::InvariantCulture)
        "$Id`t$Run`t$Owner`t$created`tD:\`t$Mount`t$Share"
    }

    function New-TestCopy([string]$Id, [string]$Mount, [int]$Number) {
        [pscustomobject]@{ ID = $Id; ExposedName = $(if ($Mount) { "$Mount\" } else { '' }); DeviceObject = "\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy$Number" }
    }
}

Describe 'Clear-HvbLeftovers' {
    BeforeEach {
        $script:linkRoot = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-sweep-shadow-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:linkRoot | Out-Null

        # Checkpoints: one VM, a list Remove-VMSnapshot takes from.
        Mock Get-VM { @(New-FakeVm 'ERP01') }
        $script:snapshots = @(
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r0'; SnapshotType = 'Production'; CreationTime = (Get-Date).AddDays(-1) },
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r0 (crash-consistent)'; SnapshotType = 'Standard'; CreationTime = (Get-Date).AddDays(-1) },
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r1'; SnapshotType = 'Production'; CreationTime = (Get-Date).AddMinutes(-2) },
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r1 (crash-consistent)'; SnapshotType = 'Standard'; CreationTime = (Get-Date).AddMinutes(-2) },
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r10'; SnapshotType = 'Production'; CreationTime = (Get-Date).AddDays(-2) },
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'avant mise a jour'; SnapshotType = 'Standard'; CreationTime = (Get-Date).AddDays(-9) },
            [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'Veeam running now'; SnapshotType = 'Recovery'; CreationTime = (Get-Date).AddMinutes(-5) })
        Mock Get-VMSnapshot { $script:snapshots }
        Mock Remove-VMSnapshot { $script:snapshots = @($script:snapshots | Where-Object { $_.Id -ne $VMSnapshot.Id }); New-FakeJob }
        Mock Get-VMHardDiskDrive { @() }

        # VSS and the SMB server as lists.
        $script:copies = @()
        $script:removedCopies = @()
        Mock Get-CimInstance { @($script:copies | Where-Object { -not $Filter -or $Filter -eq "ID = '$($_.ID)'" }) } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
        Mock Remove-CimInstance -RemoveParameterType InputObject {
            $script:removedCopies += "$($InputObject.ID)"
            $script:copies = @($script:copies | Where-Object { $_.ID -ne $InputObject.ID })
        }
        $script:shares = @()
        Mock Get-SmbShare { @($script:shares | Where-Object { -not $Name -or $Name -contains $_.Name }) }
        Mock Remove-SmbShare { $script:shares = @($script:shares | Where-Object { $Name -notcontains $_.Name }) }

        # shadow-copies.txt, read and written through the mocks only; no roots.json unless a test says so.
        $script:recordLines = @()
        Mock Test-Path { $true } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        Mock Get-Content { $script:recordLines } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        Mock Set-Content { $script:recordLines = @($Value) } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
    }
    AfterEach { Remove-Item -Recurse -Force $script:linkRoot }

    Context 'checkpoints' {
        It "removes only hvbackup's own checkpoints by their exact names, keeping this run's under either name" {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r1'; SkipShadowCopies = $true }
            $r.ok | Should -BeTrue
            @($r.checkpoints | ForEach-Object { $_.name }) | Should -Be @('hvbackup-r0', 'hvbackup-r0 (crash-consistent)', 'hvbackup-r10')
            @($r.checkpoints | Where-Object { -not $_.removed }).Count | Should -Be 0
            Should -Invoke Remove-VMSnapshot -Times 3 -Exactly
            Should -Invoke Remove-VMSnapshot -Times 0 -ParameterFilter { $VMSnapshot.Name -like 'hvbackup-r1*' -and $VMSnapshot.Name -ne 'hvbackup-r10' }
            @($script:snapshots | ForEach-Object { $_.Name }) | Should -Be @('hvbackup-r1', 'hvbackup-r1 (crash-consistent)', 'avant mise a jour', 'Veeam running now')
        }

        It "never removes the technician's checkpoint nor another product's young Recovery checkpoint" {
            Invoke-Script 'Clear-HvbLeftovers' @{ SkipShadowCopies = $true } | Out-Null
            Should -Invoke Remove-VMSnapshot -Times 0 -ParameterFilter { $VMSnapshot.Name -eq 'avant mise a jour' }
            Should -Invoke Remove-VMSnapshot -Times 0 -ParameterFilter { "$($VMSnapshot.SnapshotType)" -eq 'Recovery' }
        }

        It 'never removes a Recovery checkpoint, even one whose name starts with the prefix' {
            $script:snapshots = @([pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-other'; SnapshotType = 'Recovery'; CreationTime = (Get-Date).AddMinutes(-5) })
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ SkipShadowCopies = $true }
            @($r.checkpoints).Count | Should -Be 0
            Should -Invoke Remove-VMSnapshot -Times 0
        }

        It 'looks only at the VMs it is given, by their exact names' {
            Mock Get-VM { @((New-FakeVm 'ERP01'), (New-FakeVm 'ERP02')) }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ VMName = @('ERP0*'); KeepRunId = 'r1'; SkipShadowCopies = $true }
            @($r.checkpoints).Count | Should -Be 0
            Should -Invoke Get-VMSnapshot -Times 0
        }

        It 'reports CHECKPOINT_REMOVE_FAILED for a checkpoint whose merge fails, and goes on' {
            Mock Remove-VMSnapshot { Start-Job -ScriptBlock { throw 'The operation cannot be performed while the object is in use.' } }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r1'; SkipShadowCopies = $true }
            $r.ok | Should -BeTrue
            @($r.checkpoints).Count | Should -Be 3
            foreach ($cp in $r.checkpoints) {
                $cp.removed | Should -BeFalse
                $cp.error.code | Should -Be 'CHECKPOINT_REMOVE_FAILED'
            }
        }

        It 'leaves checkpoints alone with -SkipCheckpoints' {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ SkipCheckpoints = $true }
            @($r.checkpoints).Count | Should -Be 0
            Should -Invoke Get-VM -Times 0
            Should -Invoke Remove-VMSnapshot -Times 0
        }

        It 'says SWEEP_FAILED when Hyper-V cannot be asked' {
            Mock Get-VM { throw 'The Hyper-V Virtual Machine Management service is not running.' }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r1' }
            $r.ok | Should -BeFalse
            $r.error.code | Should -Be 'SWEEP_FAILED'
            $r.error.message | Should -Match 'Virtual Machine Management'
        }
    }

    Context 'shadow copies' {
        BeforeEach {
            $script:mount = @{}
            foreach ($name in @('ra-1', 'rb-1', 'rc-1', 'r9-1')) {
                $script:mount[$name] = Join-Path $script:linkRoot $name
                New-Item -ItemType Directory -Path $script:mount[$name] | Out-Null
            }
            $script:recordLines = @(
                (New-TestRecord '{S1}' 'ra' 'ACME/fichiers' 1 $script:mount['ra-1'] 'hvb-ra-1$'),    # same owner: now
                (New-TestRecord '{S2}' 'rb' 'ACME/compta' 1 $script:mount['rb-1'] 'hvb-rb-1$'),      # other owner, young: kept
                (New-TestRecord '{S3}' 'rc' 'ACME/compta' 30 $script:mount['rc-1'] 'hvb-rc-1$'),     # other owner, 30 h: gone
                (New-TestRecord '{S4}' 'r9' 'ACME/fichiers' 1 $script:mount['r9-1'] 'hvb-r9-1$'),    # this run: kept
                '{S5}')                                                                               # an older line, ID alone
            $script:copies = @(
                (New-TestCopy '{S1}' $script:mount['ra-1'] 1), (New-TestCopy '{S2}' $script:mount['rb-1'] 2),
                (New-TestCopy '{S3}' $script:mount['rc-1'] 3), (New-TestCopy '{S4}' $script:mount['r9-1'] 4),
                (New-TestCopy '{S5}' '' 5))
            $script:shares = @('ra', 'rb', 'rc', 'r9') | ForEach-Object { [pscustomobject]@{ Name = "hvb-$_-1`$"; Path = $script:mount["$_-1"] } }
        }

        It "removes its own job's copies at once, other jobs' only after 24 h, never this run's" {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; SkipCheckpoints = $true }
            $r.ok | Should -BeTrue
            @($r.shadow_copies | ForEach-Object { $_.id } | Sort-Object) | Should -Be @('{S1}', '{S3}', '{S5}')
            @($r.shadow_copies | Where-Object { -not $_.removed }).Count | Should -Be 0
            @($script:removedCopies | Sort-Object) | Should -Be @('{S1}', '{S3}', '{S5}')
            @($script:shares | ForEach-Object { $_.Name } | Sort-Object) | Should -Be @('hvb-r9-1$', 'hvb-rb-1$')
            Test-Path -LiteralPath $script:mount['ra-1'] | Should -BeFalse
            Test-Path -LiteralPath $script:mount['rc-1'] | Should -BeFalse
            Test-Path -LiteralPath $script:mount['rb-1'] | Should -BeTrue
            Test-Path -LiteralPath $script:mount['r9-1'] | Should -BeTrue
            @($script:recordLines | ForEach-Object { ($_ -split "`t")[0] }) | Should -Be @('{S2}', '{S4}')
        }

        It "keeps another job's copy younger than -ShadowOlderThanHours" {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; ShadowOlderThanHours = 48; SkipCheckpoints = $true }
            @($r.shadow_copies | ForEach-Object { $_.id } | Sort-Object) | Should -Be @('{S1}', '{S5}')
            $script:removedCopies | Should -Not -Contain '{S3}'
        }

        It "seen from the other job, only its own copies go and this job's young one stays" {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'rz'; Owner = 'ACME/compta'; SkipCheckpoints = $true }
            @($r.shadow_copies | ForEach-Object { $_.id } | Sort-Object) | Should -Be @('{S2}', '{S3}', '{S5}')
            @($script:copies | ForEach-Object { $_.ID } | Sort-Object) | Should -Be @('{S1}', '{S4}')
        }

        It 'removes the share and mount folder of a record whose copy is already gone, and strikes its line' {
            $script:copies = @($script:copies | Where-Object { $_.ID -ne '{S1}' })
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; SkipCheckpoints = $true }
            $entry = @($r.shadow_copies | Where-Object { $_.id -eq '{S1}' })[0]
            $entry.removed | Should -BeFalse
            $entry.error | Should -BeNullOrEmpty
            Should -Invoke Remove-SmbShare -Times 1 -Exactly -ParameterFilter { $Name -eq 'hvb-ra-1$' }
            Test-Path -LiteralPath $script:mount['ra-1'] | Should -BeFalse
            @($script:recordLines | Where-Object { $_ -like '{S1}*' }).Count | Should -Be 0
        }

        It 'finds the copy of a pending record by its exact mount folder: r1-1, never r1-10 (ShadowCopy1 vs ShadowCopy10)' {
            $m1 = Join-Path $script:linkRoot 'r1-1'
            $m10 = Join-Path $script:linkRoot 'r1-10'
            New-Item -ItemType Directory -Path $m1, $m10 | Out-Null
            $script:recordLines = @(New-TestRecord 'pending' 'r1' 'ACME/fichiers' 1 $m1 'hvb-r1-1$')
            $script:copies = @((New-TestCopy '{K10}' $m10 10), (New-TestCopy '{K1}' $m1 1))
            $script:shares = @([pscustomobject]@{ Name = 'hvb-r1-1$'; Path = $m1 }, [pscustomobject]@{ Name = 'hvb-r1-10$'; Path = $m10 })
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; SkipCheckpoints = $true }
            @($r.shadow_copies).Count | Should -Be 1
            $r.shadow_copies[0].id | Should -Be '{K1}'
            $r.shadow_copies[0].removed | Should -BeTrue
            @($script:removedCopies) -join ',' | Should -Be '{K1}'
            @($script:shares | ForEach-Object { $_.Name }) | Should -Be @('hvb-r1-10$')
            Test-Path -LiteralPath $m1 | Should -BeFalse
            Test-Path -LiteralPath $m10 | Should -BeTrue
            @($script:recordLines).Count | Should -Be 0
        }

        It 'takes the pending line and the ID line of one copy as one, by its ID' {
            $m = Join-Path $script:linkRoot 'rj-1'
            New-Item -ItemType Directory -Path $m | Out-Null
            $script:recordLines = @((New-TestRecord 'pending' 'rj' 'ACME/fichiers' 1 $m 'hvb-rj-1$'), (New-TestRecord '{J1}' 'rj' 'ACME/fichiers' 1 $m 'hvb-rj-1$'))
            $script:copies = @(New-TestCopy '{J1}' $m 1)
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; SkipCheckpoints = $true }
            @($r.shadow_copies).Count | Should -Be 1
            $r.shadow_copies[0].id | Should -Be '{J1}'
            Should -Invoke Get-CimInstance -Times 1 -Exactly -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' -and $Filter -eq "ID = '{J1}'" }
            Should -Invoke Remove-CimInstance -Times 1 -Exactly
            @($script:recordLines).Count | Should -Be 0
        }

        It 'removes a copy given by -ShadowId that was never recorded' {
            $script:copies += New-TestCopy '{X9}' '' 9
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; ShadowId = @('{X9}'); SkipCheckpoints = $true }
            @($r.shadow_copies | ForEach-Object { $_.id }) | Should -Contain '{X9}'
            $script:removedCopies | Should -Contain '{X9}'
        }

        It 'changes nothing with -DryRun and says which copies are still there' {
            $script:copies = @($script:copies | Where-Object { $_.ID -ne '{S3}' })
            $before = $script:recordLines
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; DryRun = $true }
            $r.ok | Should -BeTrue
            $r.dry_run | Should -BeTrue
            @($r.checkpoints).Count | Should -Be 5
            @($r.checkpoints | Where-Object { $_.removed }).Count | Should -Be 0
            @($r.shadow_copies | ForEach-Object { $_.id } | Sort-Object) | Should -Be @('{S1}', '{S3}', '{S5}')
            (@($r.shadow_copies | Where-Object { $_.id -eq '{S3}' })[0]).present | Should -BeFalse
            (@($r.shadow_copies | Where-Object { $_.id -eq '{S1}' })[0]).present | Should -BeTrue
            Should -Invoke Remove-VMSnapshot -Times 0
            Should -Invoke Remove-CimInstance -Times 0
            Should -Invoke Remove-SmbShare -Times 0
            Should -Invoke Set-Content -Times 0
            Test-Path -LiteralPath $script:mount['ra-1'] | Should -BeTrue
            $script:recordLines | Should -Be $before
        }

        It 'leaves shadow copies alone with -SkipShadowCopies' {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r1'; Owner = 'ACME/fichiers'; SkipShadowCopies = $true }
            @($r.shadow_copies).Count | Should -Be 0
            Should -Invoke Remove-CimInstance -Times 0
            Should -Invoke Set-Content -Times 0
        }

        It 'reports SHADOW_REMOVE_FAILED for a copy VSS refuses to delete, keeps its line, and goes on' {
            Mock Remove-CimInstance { if ($InputObject.ID -eq '{S1}') { throw 'Access is denied.' }; $script:removedCopies += "$($InputObject.ID)" }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; SkipCheckpoints = $true }
            $r.ok | Should -BeTrue
            $failed = @($r.shadow_copies | Where-Object { $_.id -eq '{S1}' })[0]
            $failed.removed | Should -BeFalse
            $failed.error.code | Should -Be 'SHADOW_REMOVE_FAILED'
            @($script:removedCopies | Sort-Object) | Should -Be @('{S3}', '{S5}')
            @($script:recordLines | ForEach-Object { ($_ -split "`t")[0] }) | Should -Be @('{S1}', '{S2}', '{S4}')
        }

        It 'is idempotent: a second sweep finds nothing more to remove' {
            $arguments = @{ KeepRunId = 'r9'; Owner = 'ACME/fichiers'; VMName = @('ERP01') }
            Invoke-Script 'Clear-HvbLeftovers' $arguments | Out-Null
            $r = Invoke-Script 'Clear-HvbLeftovers' $arguments
            $r.ok | Should -BeTrue
            @($r.checkpoints).Count | Should -Be 0
            @($r.shadow_copies).Count | Should -Be 0
            @($r.run_shares).Count | Should -Be 0
            Should -Invoke Remove-VMSnapshot -Times 5 -Exactly
            Should -Invoke Remove-CimInstance -Times 3 -Exactly
            @($script:recordLines | ForEach-Object { ($_ -split "`t")[0] }) | Should -Be @('{S2}', '{S4}')
        }
    }

    Context 'per-run shares of staging folders' {
        BeforeEach {
            $script:staging = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-sweep-' + [guid]::NewGuid())
            New-Item -ItemType Directory -Path (Join-Path $script:staging 'now'), (Join-Path $script:staging 'old'), (Join-Path $script:staging 'mine') -Force | Out-Null
            (Get-Item -LiteralPath (Join-Path $script:staging 'old')).CreationTimeUtc = [DateTime]::UtcNow.AddHours(-30)
            Set-HvbTestRoots @{ staging = @($script:staging); shares = @(); restore = @() }
            $script:shares = @(
                [pscustomobject]@{ Name = 'hvb-gone-sql$'; Path = (Join-Path $script:staging 'gone') },
                [pscustomobject]@{ Name = 'hvb-old-vm$'; Path = (Join-Path $script:staging 'old') },
                [pscustomobject]@{ Name = 'hvb-now-vm$'; Path = (Join-Path $script:staging 'now') },
                [pscustomobject]@{ Name = 'hvb-mine-sql$'; Path = (Join-Path $script:staging 'mine') },
                [pscustomobject]@{ Name = 'hvb-x-sql$'; Path = 'C:\Windows' },
                [pscustomobject]@{ Name = 'hvb-now-1$'; Path = (Join-Path $script:staging 'gone') },
                [pscustomobject]@{ Name = 'Compta$'; Path = (Join-Path $script:staging 'gone') })
        }
        AfterEach { Remove-Item -Recurse -Force $script:staging }

        It "removes the shares of runs that are over (folder gone or older than 24 h), not a running job's, this run's nor another share" {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'mine'; SkipCheckpoints = $true; SkipShadowCopies = $true }
            $r.ok | Should -BeTrue
            @($r.run_shares | ForEach-Object { $_.name }) | Should -Be @('hvb-gone-sql$', 'hvb-old-vm$')
            @($r.run_shares | Where-Object { -not $_.removed }).Count | Should -Be 0
            Should -Invoke Remove-SmbShare -Times 2 -Exactly
            @($script:shares | ForEach-Object { $_.Name }) | Should -Be @('hvb-now-vm$', 'hvb-mine-sql$', 'hvb-x-sql$', 'hvb-now-1$', 'Compta$')
            # The share alone: its folder is Remove-HvbStaging.ps1's.
            Test-Path -LiteralPath (Join-Path $script:staging 'old') | Should -BeTrue
        }

        It 'lists them without removing under -DryRun' {
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'mine'; SkipCheckpoints = $true; SkipShadowCopies = $true; DryRun = $true }
            @($r.run_shares | ForEach-Object { $_.name }) | Should -Be @('hvb-gone-sql$', 'hvb-old-vm$')
            @($r.run_shares | Where-Object { $_.removed }).Count | Should -Be 0
            Should -Invoke Remove-SmbShare -Times 0
        }

        It 'reports SHARE_REMOVE_FAILED for a share that cannot be removed, and goes on' {
            Mock Remove-SmbShare { throw 'Access is denied.' } -ParameterFilter { $Name -eq 'hvb-gone-sql$' }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'mine'; SkipCheckpoints = $true; SkipShadowCopies = $true }
            $r.ok | Should -BeTrue
            $r.run_shares[0].removed | Should -BeFalse
            $r.run_shares[0].error.code | Should -Be 'SHARE_REMOVE_FAILED'
            $r.run_shares[1].removed | Should -BeTrue
        }

        It 'removes no run share on a host never onboarded (no staging root)' {
            Mock Test-Path { $false } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
            $r = Invoke-Script 'Clear-HvbLeftovers' @{ KeepRunId = 'mine'; SkipCheckpoints = $true; SkipShadowCopies = $true }
            @($r.run_shares).Count | Should -Be 0
            Should -Invoke Remove-SmbShare -Times 0
        }
    }
}
