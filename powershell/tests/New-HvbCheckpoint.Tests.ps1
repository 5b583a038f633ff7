BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'New-HvbCheckpoint' {
    BeforeEach {
        $script:vm = New-FakeVm 'ERP01'
        Mock Get-VM { @($script:vm) }
        Mock Set-VM { return }
        $script:taken = @()
        Mock Get-VMSnapshot { $script:taken }
        Mock Checkpoint-VM { $script:taken += [pscustomobject]@{ Id = [guid]::NewGuid(); Name = $SnapshotName }; New-FakeJob }
        Mock Get-VMIntegrationService { [pscustomobject]@{ Id = 'Microsoft:X\5CED1297-4598-4915-A5FC-AD21BB4D02A4'; Enabled = $true; PrimaryOperationalStatus = 'Error' } }
        Mock Get-VMHardDiskDrive { [pscustomobject]@{ Path = 'D:\Hyper-V\ERP01\ERP01.vhdx'; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 0 } }
        Mock Get-VHD { [pscustomobject]@{ ParentPath = $null; Size = 100GB; FileSize = 40GB } }
        Mock Get-VMFirmware { [pscustomobject]@{ SecureBoot = 'On' } }
        Mock Get-VMNetworkAdapter { @() }
    }

    It 'takes a ProductionOnly checkpoint and puts the VM setting back' {
        $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1' }
        $r.ok | Should -BeTrue
        $r.consistency | Should -Be 'application'
        $r.disks[0].chain | Should -Be @('D:\Hyper-V\ERP01\ERP01.vhdx')
        Should -Invoke Set-VM -ParameterFilter { $CheckpointType -eq 'ProductionOnly' } -Times 1
        Should -Invoke Set-VM -ParameterFilter { $CheckpointType -eq 'Production' } -Times 1
    }

    It 'stops with GUEST_VSS_FAILED when crash-consistent is not allowed' {
        Mock Checkpoint-VM { Start-Job -ScriptBlock { throw 'The VSS writer failed' } }
        $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1' }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'GUEST_VSS_FAILED'
        Should -Invoke Set-VM -ParameterFilter { $CheckpointType -eq 'Production' } -Times 1
    }

    It 'falls back to a standard checkpoint labelled crash when allowed' {
        $script:calls = 0
        Mock Checkpoint-VM { $script:calls++; if ($script:calls -eq 1) { Start-Job -ScriptBlock { throw 'VSS failed' } } else { New-FakeJob } }
        $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1'; AllowCrashConsistent = $true }
        $r.consistency | Should -Be 'crash'
        # No Hyper-V cmdlet writes a checkpoint's notes: the name carries the consistency.
        $r.checkpoint_name | Should -Be 'hvbackup-r1 (crash-consistent)'
        Should -Invoke Set-VM -ParameterFilter { $CheckpointType -eq 'Standard' } -Times 1
    }

    It 'says CHECKPOINT_FAILED, not GUEST_VSS_FAILED, when the guest VSS service is healthy' {
        Mock Get-VMIntegrationService { [pscustomobject]@{ Id = 'Microsoft:X\5CED1297-4598-4915-A5FC-AD21BB4D02A4'; Enabled = $true; PrimaryOperationalStatus = 'Ok' } }
        Mock Checkpoint-VM { Start-Job -ScriptBlock { throw 'There is not enough space on the disk' } }
        $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1'; AllowCrashConsistent = $true }
        $r.error.code | Should -Be 'CHECKPOINT_FAILED'
        Should -Invoke Set-VM -ParameterFilter { $CheckpointType -eq 'Standard' } -Times 0
    }

    It 'finds the VM by its exact name, never as a wildcard pattern' {
        Mock Get-VM { @((New-FakeVm 'ERP01'), (New-FakeVm 'ERP02')) }
        (Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP*'; RunId = 'r1' }).error.code | Should -Be 'VM_NOT_FOUND'
        Should -Invoke Get-VM -ParameterFilter { $Name } -Times 0
    }

    It 'leaves pass-through disks out of the frozen disks' {
        Mock Get-VMHardDiskDrive { @([pscustomobject]@{ Path = 'D:\Hyper-V\ERP01\ERP01.vhdx'; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 0; DiskNumber = $null },
                                     [pscustomobject]@{ Path = 'Disk 2 30.00 GB Bus 0 Lun 1 Target 0'; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 1; DiskNumber = 2 }) }
        $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1' }
        @($r.disks).Count | Should -Be 1
        @($r.passthrough_disks).Count | Should -Be 1
        Should -Invoke Get-VHD -ParameterFilter { $Path -like 'Disk *' } -Times 0
    }

    It 'changes nothing with -DryRun' {
        $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1'; DryRun = $true }
        $r.dry_run | Should -BeTrue
        Should -Invoke Checkpoint-VM -Times 0
        Should -Invoke Set-VM -Times 0
    }

    It 'says VM_NOT_FOUND for an unknown VM' {
        Mock Get-VM { @() }
        (Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'NOPE'; RunId = 'r1' }).error.code | Should -Be 'VM_NOT_FOUND'
    }

    It 'refuses checkpoint mode through the JEA endpoint, before any checkpoint' {
        $global:PSSenderInfo = [pscustomobject]@{ ConnectedUser = 'HV01\hvbackup'; ConfigurationName = 'hvbackup' }
        try {
            $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1' }
            $r.error.code | Should -Be 'CHECKPOINT_MODE_REFUSED'
            $r.error.message | Should -Match 'mode: export'
            Should -Invoke Checkpoint-VM -Times 0
        } finally { Remove-Variable -Name PSSenderInfo -Scope Global -ErrorAction SilentlyContinue }
    }

    It 'shares the export folder to the connected account and gives the share paths' {
        $staging = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-export-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $staging | Out-Null
        Set-HvbTestRoots @{ staging = @($staging); shares = @(); restore = @() }
        $global:PSSenderInfo = [pscustomobject]@{ ConnectedUser = 'HV01\hvbackup'; ConfigurationName = 'hvbackup' }
        try {
            Mock Get-CimInstance { [pscustomobject]@{ Name = [System.IO.Path]::GetPathRoot($staging); FreeSpace = 1TB } } -ParameterFilter { $ClassName -eq 'Win32_Volume' }
            Mock Export-VMSnapshot { New-Item -ItemType Directory -Force -Path (Join-Path $Path 'ERP01\Virtual Hard Disks') | Out-Null; Set-Content -Path (Join-Path $Path 'ERP01\Virtual Hard Disks\ERP01.vhdx') -Value 'x'; New-FakeJob }
            Mock Get-SmbShare { $null }
            Mock New-SmbShare { [pscustomobject]@{ Name = $Name; Path = $Path } }
            $r = Invoke-Script 'New-HvbCheckpoint' @{ VMName = 'ERP01'; RunId = 'r1'; Mode = 'export'; StagingPath = $staging }
            $r.ok | Should -BeTrue
            $r.share | Should -Be 'hvb-r1-vm$'
            $r.files[0].exposed | Should -Be "\\$env:COMPUTERNAME\hvb-r1-vm$\ERP01\Virtual Hard Disks\ERP01.vhdx"
            Should -Invoke New-SmbShare -Times 1 -ParameterFilter { $Name -eq 'hvb-r1-vm$' -and $ReadAccess -eq 'HV01\hvbackup' -and $CachingMode -eq 'None' -and -not $FullAccess -and -not $ChangeAccess }
            $ace = (Get-Acl (Join-Path $staging 'r1')).Access | Where-Object { "$($_.IdentityReference)" -eq 'HV01\hvbackup' }
            $ace | Should -Not -BeNullOrEmpty
        } finally {
            Remove-Variable -Name PSSenderInfo -Scope Global -ErrorAction SilentlyContinue
            Remove-Item -Recurse -Force $staging
        }
    }

}
