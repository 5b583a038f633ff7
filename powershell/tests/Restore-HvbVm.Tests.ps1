BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Restore-HvbVm' {
    BeforeEach {
        $script:root = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-restore-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:root -Force | Out-Null
        Set-Content -Path (Join-Path $script:root 'ERP01.vhdx') -Value 'disk'
        $script:config = '{"generation":2,"cpu_count":4,"memory_startup_bytes":8589934592,"dynamic_memory":false,"memory_minimum_bytes":0,"memory_maximum_bytes":0,"secure_boot":"On","network_adapters":[{"name":"LAN","switch":"LAN","mac":"","vlan_id":0}]}'
        $script:disks = ConvertTo-Json -Compress @(@{ controller_type = 'SCSI'; controller_number = 0; controller_location = 0; chain = @((Join-Path $script:root 'ERP01.vhdx')) })
        Mock Get-VM { @() } -ParameterFilter { $Name }
        Mock Get-VM { [pscustomobject]@{ Id = [guid]::NewGuid(); State = 'Off' } } -ParameterFilter { $Id }
        Mock New-VM { [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'ERP01-restored' } }
        Mock Set-VM { return }
        Mock Set-VMFirmware { return }
        Mock Add-VMHardDiskDrive { return }
        Mock Get-VMNetworkAdapter { @() }
        Mock Get-VMSwitch { $null }
        Mock Add-VMNetworkAdapter { return }
    }
    AfterEach { Remove-Item -Recurse -Force $script:root }

    It 'recreates the VM, left off, with its disk attached' {
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'ERP01-restored'; ConfigurationJson = $script:config; DiskJson = $script:disks }
        $r.ok | Should -BeTrue
        $r.state | Should -Be 'Off'
        Should -Invoke Add-VMHardDiskDrive -Times 1
    }

    It 'attaches every disk of a multi-disk VM (5.1 emits a JSON array as one object)' {
        Set-Content -Path (Join-Path $script:root 'DATA.vhdx') -Value 'disk'
        $two = ConvertTo-Json -Compress @(@{ controller_type = 'SCSI'; controller_number = 0; controller_location = 0; chain = @((Join-Path $script:root 'ERP01.vhdx')) },
                                          @{ controller_type = 'SCSI'; controller_number = 0; controller_location = 1; chain = @((Join-Path $script:root 'DATA.vhdx')) })
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'ERP01-restored'; ConfigurationJson = $script:config; DiskJson = $two }
        $r.ok | Should -BeTrue
        Should -Invoke Add-VMHardDiskDrive -Times 2
    }

    It 'never touches an existing VM of the same name' {
        Mock Get-VM { @(New-FakeVm 'ERP01') } -ParameterFilter { $Name }
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'ERP01'; ConfigurationJson = $script:config; DiskJson = $script:disks }
        $r.error.code | Should -Be 'VM_EXISTS'
        Should -Invoke New-VM -Times 0
    }
}
