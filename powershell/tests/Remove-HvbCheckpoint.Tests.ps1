BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Remove-HvbCheckpoint' {
    BeforeEach {
        Mock Get-VM { @(New-FakeVm 'ERP01') }
        $script:cp = [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-r1'; ParentSnapshotId = $null }
        Mock Get-VMSnapshot { $script:cp } -ParameterFilter { $Name }
        Mock Get-VMSnapshot { @($script:cp) }
        Mock Remove-VMSnapshot { New-FakeJob }
        Mock Start-Sleep { return }
    }

    It 'removes the checkpoint and waits until the .avhdx is merged' {
        $script:polls = 0
        Mock Get-VMHardDiskDrive { $script:polls++; if ($script:polls -le 2) { [pscustomobject]@{ Path = 'D:\Hyper-V\ERP01_1.avhdx' } } else { [pscustomobject]@{ Path = 'D:\Hyper-V\ERP01.vhdx' } } }
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -like '*.avhdx' }
        $r = Invoke-Script 'Remove-HvbCheckpoint' @{ VMName = 'ERP01'; CheckpointName = 'hvbackup-r1'; PollSeconds = 0 }
        $r.removed | Should -BeTrue
        $r.merged | Should -BeTrue
    }

    It 'reports merged false when the merge outlasts the timeout' {
        Mock Get-VMHardDiskDrive { [pscustomobject]@{ Path = 'D:\Hyper-V\ERP01_1.avhdx' } }
        $r = Invoke-Script 'Remove-HvbCheckpoint' @{ VMName = 'ERP01'; CheckpointName = 'hvbackup-r1'; TimeoutSeconds = 0; PollSeconds = 0 }
        $r.ok | Should -BeTrue
        $r.merged | Should -BeFalse
        $r.remaining_files | Should -Contain 'D:\Hyper-V\ERP01_1.avhdx'
    }

    It 'removes only hvbackup checkpoints, the crash-consistent name included' {
        foreach ($name in @('Avant mise à jour', 'hvbackup-r1 (copie)', 'HVB-r1')) {
            { Invoke-Script 'Remove-HvbCheckpoint' @{ VMName = 'ERP01'; CheckpointName = $name } } | Should -Throw
        }
        Should -Invoke Remove-VMSnapshot -Times 0
        Mock Get-VMSnapshot { $null } -ParameterFilter { $Name }
        (Invoke-Script 'Remove-HvbCheckpoint' @{ VMName = 'ERP01'; CheckpointName = 'hvbackup-r1 (crash-consistent)' }).ok | Should -BeTrue
    }

    It 'is idempotent when the checkpoint is already gone' {
        Mock Get-VMSnapshot { $null } -ParameterFilter { $Name }
        $r = Invoke-Script 'Remove-HvbCheckpoint' @{ VMName = 'ERP01'; CheckpointName = 'hvbackup-r1' }
        $r.already_absent | Should -BeTrue
        Should -Invoke Remove-VMSnapshot -Times 0
    }
}
