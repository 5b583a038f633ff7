BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'New-HvbCheckpoint' {
    BeforeEach {
        $script:vm = New-FakeVm 'ERP01'
        Mock Get-VM { @($script:vm) }
        Mock Set-VM { return }
        Mock Get-VMSnapshot { $null } -ParameterFilter { $Name -and $ErrorAction -eq 'SilentlyContinue' }
        Mock Get-VMSnapshot { [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r1'; Notes = '' } }
        Mock Checkpoint-VM { New-FakeJob }
        Mock Set-VMSnapshot { return }
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
        Should -Invoke Set-VM -ParameterFilter { $CheckpointType -eq 'Standard' } -Times 1
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
}
