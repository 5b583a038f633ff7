BeforeAll {
    . (Join-Path $PSScriptRoot 'TestHelpers.ps1')

    # The script defines Invoke-HvbNative itself (diskshadow.exe runs through it). Mock needs an
    # existing command to copy the signature from; the mock is an alias, which PowerShell finds
    # before any function of that name, the script's own included. The stand-in never runs.
    function Invoke-HvbNative {
        param([Parameter(Position = 0)][string]$File, [Parameter(Position = 1)][string[]]$Arguments)
        throw 'diskshadow.exe must not run in the tests'
    }

    function New-FakeShadow([string]$Volume, [string]$Mount, [int]$Number) {
        # A Win32_ShadowCopy as a persistent DiskShadow copy exposed on a folder looks.
        [pscustomobject]@{
            ID = '{{{0}}}' -f [guid]::NewGuid(); VolumeName = $Volume; ExposedName = "$Mount\"
            DeviceObject = "\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy$Number"
            NoWriters = $false; ClientAccessible = $false; Persistent = $true
        }
    }

    function Get-DiskShadowLine([string[]]$Lines, [string]$Pattern) {
        foreach ($line in $Lines) { if ($line -match $Pattern) { return $Matches[1] } }
    }
}

Describe 'New-HvbShadowCopy' {
    BeforeEach {
        $script:linkRoot = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-shadow-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:linkRoot | Out-Null
        Set-HvbTestRoots @{ staging = @(); shares = @('D:\Partages', 'D:\Mounts'); restore = @() }
        $global:PSSenderInfo = [pscustomobject]@{ ConnectedUser = 'HV01\hvbackup'; ConfigurationName = 'hvbackup' }

        # The folders to copy exist (on the host's D:, not on this machine).
        Mock Test-Path { $true } -ParameterFilter { $PathType -eq 'Container' -and $LiteralPath -like 'D:\*' }
        $script:volumes = @(
            [pscustomobject]@{ Name = 'C:\'; DriveType = 3 },
            [pscustomobject]@{ Name = 'D:\'; DriveType = 3 },
            [pscustomobject]@{ Name = 'D:\Mounts\Data\'; DriveType = 3 },
            [pscustomobject]@{ Name = '\\?\Volume{0b5e1c2a-0000-0000-0000-100000000000}\'; DriveType = 3 })
        Mock Get-CimInstance { $script:volumes } -ParameterFilter { $ClassName -eq 'Win32_Volume' }

        # VSS as a list of copies: DiskShadow adds one, Remove-CimInstance takes it away.
        $script:copies = @()
        Mock Get-CimInstance { @($script:copies | Where-Object { -not $Filter -or $Filter -eq "ID = '$($_.ID)'" }) } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
        Mock Remove-CimInstance -RemoveParameterType InputObject { $script:copies = @($script:copies | Where-Object { $_.ID -ne $InputObject.ID }) }

        # The DiskShadow script is captured when written, and read back by the DiskShadow mock.
        $script:dsScripts = @{}
        $script:order = @()
        $script:records = @()
        $script:fail = @{}   # volume -> @{ ExitCode; Output; Expose }
        Mock Set-Content { $script:dsScripts["$Path"] = @($Value) } -ParameterFilter { "$Path" -like '*diskshadow-*' }
        Mock Remove-Item { return } -ParameterFilter { "$LiteralPath" -like '*diskshadow-*' }
        Mock Add-Content { $script:records += "$Value"; $script:order += 'record ' + ("$Value" -split "`t")[0] } -ParameterFilter { "$Path" -like '*hvbackup\shadow-copies.txt' }
        Mock New-Item { return } -ParameterFilter { @($Path) -contains (Join-Path $env:ProgramData 'hvbackup') }
        Mock Invoke-HvbNative {
            $lines = @($script:dsScripts[$Arguments[1]])
            $volume = Get-DiskShadowLine $lines '^add volume (.+) alias hvb\d+$'
            $mount = Get-DiskShadowLine $lines '^expose %hvb\d+% (.+)$'
            $script:order += "diskshadow $volume"
            $failure = $script:fail[$volume]
            if (-not $failure -or $failure.Expose) { $script:copies += New-FakeShadow $volume $mount ($script:copies.Count + 1) }
            if ($failure -and $failure.Created) {
                # "create" succeeded, "expose" did not: the copy exists, on no folder, and
                # DiskShadow printed its ID.
                $copy = New-FakeShadow $volume '' ($script:copies.Count + 1)
                $copy.ExposedName = $null
                $script:copies += $copy
                return [pscustomobject]@{ ExitCode = $failure.ExitCode; Output = "Alias hvb1 for shadow ID $($copy.ID) set as environment variable.`n* Shadow copy ID = $($copy.ID)`t%hvb1%`n$($failure.Output)" }
            }
            if ($failure) { return [pscustomobject]@{ ExitCode = $failure.ExitCode; Output = $failure.Output } }
            [pscustomobject]@{ ExitCode = 0; Output = 'The shadow copy was successfully exposed.' }
        }

        $script:shares = @()
        Mock Get-SmbShare { @($script:shares | Where-Object { -not $Name -or $Name -contains $_.Name }) }
        Mock New-SmbShare { $script:shares += [pscustomobject]@{ Name = $Name; Path = $Path }; $script:order += "share $Name" }
        Mock Remove-SmbShare { $script:shares = @($script:shares | Where-Object { $Name -notcontains $_.Name }); $script:order += "unshare $Name" }
    }
    AfterEach {
        Remove-Variable -Name PSSenderInfo -Scope Global -ErrorAction SilentlyContinue
        Remove-Item -Recurse -Force $script:linkRoot
    }

    It 'copies each volume once with writers, mounts it under the link root and shares it to the connected account' {
        $paths = @('D:\Partages\Compta', 'D:\Partages\RH', 'D:\Mounts\Data\Plans')
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = $paths; RunId = 'r1'; Owner = 'ACME/fichiers'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeTrue
        @($r.shadows).Count | Should -Be 2
        $r.shadows[0].volume | Should -Be 'D:\'
        $r.shadows[0].link | Should -Be (Join-Path $script:linkRoot 'r1-1')
        $r.shadows[0].share | Should -Be 'hvb-r1-1$'
        $r.shadows[0].writers | Should -BeTrue
        $r.shadows[0].client_accessible | Should -BeFalse
        $r.shadows[0].id | Should -Be $script:copies[0].ID
        $r.shadows[1].volume | Should -Be 'D:\Mounts\Data\'
        $r.shadows[1].share | Should -Be 'hvb-r1-2$'
        @($r.paths | ForEach-Object { $_.exposed }) | Should -Be @(
            "\\$env:COMPUTERNAME\hvb-r1-1`$\Partages\Compta",
            "\\$env:COMPUTERNAME\hvb-r1-1`$\Partages\RH",
            "\\$env:COMPUTERNAME\hvb-r1-2`$\Plans")

        # DiskShadow in the persistent context, judged through Invoke-HvbNative.
        Should -Invoke Invoke-HvbNative -Times 2 -Exactly -ParameterFilter { $File -like '*\System32\diskshadow.exe' -and $Arguments[0] -eq '/s' }
        $first = $script:dsScripts[(Join-Path $env:ProgramData 'hvbackup\diskshadow-r1-1.txt')]
        $first | Should -Contain 'add volume D:\ alias hvb1'
        $first | Should -Contain 'set context persistent'
        $first | Should -Contain 'create'
        $first | Should -Contain ("expose %hvb1% " + (Join-Path $script:linkRoot 'r1-1'))
        Should -Invoke Remove-Item -Times 2 -Exactly -ParameterFilter { "$LiteralPath" -like '*diskshadow-r1-*' }
        Test-Path -LiteralPath (Join-Path $script:linkRoot 'r1-1') -PathType Container | Should -BeTrue

        # Read only, for the WinRM account alone, never cached offline.
        Should -Invoke New-SmbShare -Times 2 -Exactly
        Should -Invoke New-SmbShare -Times 1 -Exactly -ParameterFilter {
            $Name -eq 'hvb-r1-1$' -and $Path -eq (Join-Path $script:linkRoot 'r1-1') -and $ReadAccess -eq 'HV01\hvbackup' -and
            @($ReadAccess).Count -eq 1 -and $CachingMode -eq 'None' -and -not $FullAccess -and -not $ChangeAccess }
    }

    It 'records each copy as pending before DiskShadow runs, then by its ID before sharing it' {
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; Owner = 'ACME/fichiers'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeTrue
        $id = $r.shadows[0].id
        $script:order | Should -Be @('record pending', 'diskshadow D:\', "record $id", 'share hvb-r1-1$')
        $mount = Join-Path $script:linkRoot 'r1-1'
        foreach ($line in $script:records) {
            $f = $line -split "`t"
            $f.Count | Should -Be 7
            $f[1..2] | Should -Be @('r1', 'ACME/fichiers')
            "$([DateTime]::Parse($f[3], [System.Globalization.CultureInfo]::InvariantCulture, [System.Globalization.DateTimeStyles]::RoundtripKind).Kind)" | Should -Be 'Utc'
            $f[4..6] | Should -Be @('D:\', $mount, 'hvb-r1-1$')
        }
        ($script:records[0] -split "`t")[0] | Should -Be 'pending'
        ($script:records[1] -split "`t")[0] | Should -Be $id
    }

    It 'puts a folder on the volume mounted deepest on its path, not on one whose name merely starts it' {
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Mounts\Data\Plans', 'D:\Mounts\DataOld\Plans'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeTrue
        @($r.shadows | ForEach-Object { $_.volume }) | Should -Be @('D:\', 'D:\Mounts\Data\')
        $r.paths[0].exposed | Should -Be "\\$env:COMPUTERNAME\hvb-r1-2`$\Plans"
        $r.paths[1].exposed | Should -Be "\\$env:COMPUTERNAME\hvb-r1-1`$\Mounts\DataOld\Plans"
    }

    It 'uses the account of the session when not reached through WinRM' {
        Remove-Variable -Name PSSenderInfo -Scope Global -ErrorAction SilentlyContinue
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }).ok | Should -BeTrue
        Should -Invoke New-SmbShare -Times 1 -Exactly -ParameterFilter { $ReadAccess -eq "$env:USERDOMAIN\$env:USERNAME" }
    }

    It 'changes nothing with -DryRun' {
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages', 'D:\Mounts\Data\Plans'); RunId = 'r1'; LinkRoot = $script:linkRoot; DryRun = $true }
        $r.ok | Should -BeTrue
        $r.dry_run | Should -BeTrue
        @($r.planned).Count | Should -Be 2
        $r.planned[0] | Should -Match ([regex]::Escape('hvb-r1-1$ to HV01\hvbackup only'))
        $r.planned[1] | Should -Match ([regex]::Escape('D:\Mounts\Data\'))
        Should -Invoke Invoke-HvbNative -Times 0
        Should -Invoke Add-Content -Times 0
        Should -Invoke Set-Content -Times 0
        Should -Invoke New-Item -Times 0
        Should -Invoke New-SmbShare -Times 0
        Should -Invoke Remove-SmbShare -Times 0
        @(Get-ChildItem -LiteralPath $script:linkRoot).Count | Should -Be 0
    }

    It 'is idempotent for a run: the copy and share already made are reused' {
        $first = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $second = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $second.ok | Should -BeTrue
        $second.shadows[0].id | Should -Be $first.shadows[0].id
        $second.paths[0].exposed | Should -Be $first.paths[0].exposed
        @($script:copies).Count | Should -Be 1
        @($script:shares).Count | Should -Be 1
        Should -Invoke Invoke-HvbNative -Times 1 -Exactly
        Should -Invoke New-SmbShare -Times 1 -Exactly
        Should -Invoke Remove-SmbShare -Times 0
    }

    It 'shares its mount folder again when the share of that name points elsewhere' {
        $script:shares = @([pscustomobject]@{ Name = 'hvb-r1-1$'; Path = 'D:\Partages' })
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }).ok | Should -BeTrue
        Should -Invoke Remove-SmbShare -Times 1 -Exactly -ParameterFilter { $Name -eq 'hvb-r1-1$' }
        Should -Invoke New-SmbShare -Times 1 -Exactly -ParameterFilter { $Path -eq (Join-Path $script:linkRoot 'r1-1') }
    }

    It "does not take the copy mounted at r1-10 for its own r1-1 (ShadowCopy1 vs ShadowCopy10)" {
        $script:copies = @(New-FakeShadow 'D:\' (Join-Path $script:linkRoot 'r1-10') 10)
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeTrue
        $r.shadows[0].id | Should -Not -Be $script:copies[0].ID
        $r.shadows[0].device_object | Should -Be '\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy2'
        @($script:copies).Count | Should -Be 2
        Should -Invoke Invoke-HvbNative -Times 1 -Exactly
    }

    It 'maps the DiskShadow error <text> to <name>' -TestCases @(
        @{ text = 'VSS_E_INSUFFICIENT_STORAGE'; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ text = 'VSS_E_SNAPSHOT_SET_IN_PROGRESS'; name = 'VSS_OPERATION_IN_PROGRESS' },
        @{ text = 'VSS_E_MAXIMUM_NUMBER_OF_SNAPSHOTS_REACHED'; name = 'VSS_MAX_SHADOW_COPIES' },
        @{ text = 'E_ACCESSDENIED'; name = 'VSS_FAILED' }
    ) {
        param($text, $name)
        $script:fail['D:\'] = @{ ExitCode = 1; Output = "COM call `"m_pVssBackupComponents->DoSnapshotSet`" failed.`nThe last operation failed.`n- Error text: $text" }
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be $name
        $r.error.message | Should -Match 'diskshadow exit code 1'
        Should -Invoke New-SmbShare -Times 0
    }

    It 'maps the HRESULT <hresult> to <name>' -TestCases @(
        @{ hresult = '0x8004231f'; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ hresult = '0x8004231F'; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ hresult = '8004231f'; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ hresult = '2147754783'; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ hresult = '-2147212513'; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ hresult = '0x80042316'; name = 'VSS_OPERATION_IN_PROGRESS' },
        @{ hresult = '-2147212522'; name = 'VSS_OPERATION_IN_PROGRESS' },
        @{ hresult = '80042317'; name = 'VSS_MAX_SHADOW_COPIES' },
        @{ hresult = '2147754775'; name = 'VSS_MAX_SHADOW_COPIES' },
        @{ hresult = '0x8004231f0'; name = 'VSS_FAILED' },
        @{ hresult = '12147754783'; name = 'VSS_FAILED' }
    ) {
        param($hresult, $name)
        $script:fail['D:\'] = @{ ExitCode = 1; Output = "The last operation failed. Returned HRESULT: $hresult" }
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }).error.code | Should -Be $name
    }

    It 'says VSS_FAILED when DiskShadow exits 0 but no copy is exposed on the mount folder' {
        $script:fail['D:\'] = @{ ExitCode = 0; Output = '' }
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $r.error.code | Should -Be 'VSS_FAILED'
        Should -Invoke New-SmbShare -Times 0
    }

    It 'says VSS_LINK_FAILED when DiskShadow fails although the copy is exposed, and removes that copy' {
        $script:fail['D:\'] = @{ ExitCode = 2; Output = 'expose: the operation failed'; Expose = $true }
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }).error.code | Should -Be 'VSS_LINK_FAILED'
        @($script:copies).Count | Should -Be 0
        Test-Path -LiteralPath (Join-Path $script:linkRoot 'r1-1') | Should -BeFalse
    }

    It 'removes the copy DiskShadow created when exposing it fails, and no other copy' {
        $other = New-FakeShadow 'D:\' 'C:\elsewhere' 9   # another product's copy, there before
        $script:copies = @($other)
        $script:fail['D:\'] = @{ ExitCode = 1; Output = 'The last operation failed. Returned HRESULT: 0x80042306'; Created = $true }
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'VSS_LINK_FAILED'
        @($script:copies | ForEach-Object ID) | Should -Be @($other.ID)
        Test-Path -LiteralPath (Join-Path $script:linkRoot 'r1-1') | Should -BeFalse
        Should -Invoke New-SmbShare -Times 0
    }

    It 'removes the share, copy and mount folder it made for one volume when the next one fails' {
        $script:fail['D:\Mounts\Data\'] = @{ ExitCode = 1; Output = 'Error text: VSS_E_INSUFFICIENT_STORAGE' }
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages', 'D:\Mounts\Data\Plans'); RunId = 'r1'; LinkRoot = $script:linkRoot }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'VSS_INSUFFICIENT_STORAGE'
        Should -Invoke Remove-SmbShare -Times 1 -Exactly -ParameterFilter { $Name -eq 'hvb-r1-1$' }
        @($script:shares).Count | Should -Be 0
        @($script:copies | Where-Object { $_.VolumeName -eq 'D:\' }).Count | Should -Be 0
        Test-Path -LiteralPath (Join-Path $script:linkRoot 'r1-1') | Should -BeFalse
    }

    It 'says ROOTS_NOT_CONFIGURED on a host never onboarded' {
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }).error.code | Should -Be 'ROOTS_NOT_CONFIGURED'
        Should -Invoke Invoke-HvbNative -Times 0
    }

    It 'refuses a folder outside the share roots (registry hives of C:, a sibling, a UNC path)' {
        foreach ($bad in @('C:\', 'C:\Windows\System32\config', 'D:\Partages\..\Hyper-V', 'D:\PartagesPrives', '\\srv\share')) {
            (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages', $bad); RunId = 'r1'; LinkRoot = $script:linkRoot }).error.code | Should -Be 'PATH_NOT_ALLOWED'
        }
        Should -Invoke Invoke-HvbNative -Times 0
        Should -Invoke Get-CimInstance -Times 0 -ParameterFilter { $ClassName -eq 'Win32_Volume' }
    }

    It 'says PATH_NOT_FOUND for a folder that does not exist' {
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -eq 'D:\Partages\Absent' }
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages\Absent'); RunId = 'r1'; LinkRoot = $script:linkRoot }).error.code | Should -Be 'PATH_NOT_FOUND'
        Should -Invoke Invoke-HvbNative -Times 0
    }

    It 'says VSS_VOLUME_NOT_FOUND when no local volume holds the folder' {
        $script:volumes = @([pscustomobject]@{ Name = 'C:\'; DriveType = 3 },
                            [pscustomobject]@{ Name = '\\?\Volume{0b5e1c2a-0000-0000-0000-100000000000}\'; DriveType = 3 })
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = $script:linkRoot }).error.code | Should -Be 'VSS_VOLUME_NOT_FOUND'
        Should -Invoke Invoke-HvbNative -Times 0
    }
}
