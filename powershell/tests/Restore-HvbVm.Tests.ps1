BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Restore-HvbVm' {
    BeforeEach {
        $script:root = Join-Path ([System.IO.Path]::GetTempPath()) ('hvb-restore-' + [guid]::NewGuid())
        New-Item -ItemType Directory -Path $script:root -Force | Out-Null
        Set-Content -Path (Join-Path $script:root 'ERP01.vhdx') -Value 'disk'
        $script:config = '{"generation":2,"cpu_count":4,"memory_startup_bytes":8589934592,"dynamic_memory":false,"memory_minimum_bytes":0,"memory_maximum_bytes":0,"secure_boot":"On","network_adapters":[{"name":"LAN","switch":"LAN","mac":"","vlan_id":0}]}'
        $script:disks = ConvertTo-Json -Compress @(@{ controller_type = 'SCSI'; controller_number = 0; controller_location = 0; chain = @((Join-Path $script:root 'ERP01.vhdx')) })
        Mock Get-VM { @() }  # every VM of the host (duplicate MACs): none
        Mock Get-VM { @() } -ParameterFilter { $Name }
        Mock Get-VM { [pscustomobject]@{ Id = [guid]::NewGuid(); State = 'Off' } } -ParameterFilter { $Id }
        Mock New-VM { [pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'ERP01-restored' } }
        Mock Set-VM { return }
        Mock Set-VMFirmware { return }
        Mock Add-VMHardDiskDrive { return }
        Mock Get-VMNetworkAdapter { @() }
        Mock Get-VMSwitch { $null }
        Mock Add-VMNetworkAdapter { [pscustomobject]@{ Name = $Name } }
        Mock Get-VMScsiController { @([pscustomobject]@{ ControllerNumber = 0 }) }
        Mock Add-VMScsiController { return }
        Mock Set-VMKeyProtector { return }
        Mock Enable-VMTPM { return }
        Mock Set-VMNetworkAdapterVlan { return }
        Mock Add-VMDvdDrive { return }
        Mock Get-VMFirmware { [pscustomobject]@{ BootOrder = @() } }
        Mock Set-VMBios { return }
        Set-HvbTestRoots @{ staging = @(); shares = @(); restore = @($script:root) }
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

    It 'brings back a second SCSI controller, the Secure Boot template, the vTPM, a static MAC and its VLAN' {
        $config = '{"generation":2,"cpu_count":2,"memory_startup_bytes":4294967296,"dynamic_memory":false,"memory_minimum_bytes":0,"memory_maximum_bytes":0,"secure_boot":"On","secure_boot_template":"MicrosoftUEFICertificateAuthority","tpm_enabled":true,"scsi_controllers":2,"network_adapters":[{"name":"Prod","switch":"LAN","mac":"00155D0A0B0C","dynamic_mac":false,"vlan_id":20}],"dvd_drives":[],"boot_order":[],"automatic_start_action":"StartIfRunning","automatic_start_delay":0,"automatic_stop_action":"Save"}'
        Set-Content -Path (Join-Path $script:root 'data.vhdx') -Value 'disk'
        $disks = ConvertTo-Json -Compress @(
            @{ controller_type = 'SCSI'; controller_number = 0; controller_location = 0; chain = @((Join-Path $script:root 'ERP01.vhdx')) },
            @{ controller_type = 'SCSI'; controller_number = 1; controller_location = 3; chain = @((Join-Path $script:root 'data.vhdx')) })
        Mock Get-VMSwitch { [pscustomobject]@{ Name = 'LAN' } }
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'APP01-r'; ConfigurationJson = $config; DiskJson = $disks }
        $r.ok | Should -BeTrue
        Should -Invoke Add-VMScsiController -Times 1
        Should -Invoke Add-VMHardDiskDrive -Times 1 -ParameterFilter { $ControllerNumber -eq 1 -and $ControllerLocation -eq 3 }
        Should -Invoke Set-VMFirmware -Times 1 -ParameterFilter { $SecureBootTemplate -eq 'MicrosoftUEFICertificateAuthority' }
        Should -Invoke Enable-VMTPM -Times 1
        Should -Invoke Add-VMNetworkAdapter -Times 1 -ParameterFilter { $StaticMacAddress -eq '00155D0A0B0C' -and $SwitchName -eq 'LAN' }
        Should -Invoke Set-VMNetworkAdapterVlan -Times 1 -ParameterFilter { $VlanId -eq 20 -and $Access }
        @($r.not_restored) | Should -HaveCount 1
        $r.not_restored[0] | Should -BeLike 'vTPM*'
    }

    It 'brings back trunk and private VLANs, DVD drives, the boot order and the automatic actions, and says what it cannot' {
        $iso = Join-Path $script:root 'install.iso'
        Set-Content -Path $iso -Value 'CD001'
        $config = (@{ generation = 2; cpu_count = 2; memory_startup_bytes = 4294967296; dynamic_memory = $false; memory_minimum_bytes = 0; memory_maximum_bytes = 0; secure_boot = 'Off'; tpm_enabled = $false; scsi_controllers = 1
                network_adapters = @(
                    @{ name = 'Prod'; switch = 'LAN'; mac = '00155D0A0B0C'; dynamic_mac = $false; vlan_id = 0; vlan_mode = 'Trunk'; native_vlan_id = 10; allowed_vlan_ids = '10,20-30' },
                    @{ name = 'Admin'; switch = 'LAN'; mac = '00155D0D0E0F'; dynamic_mac = $true; vlan_id = 0; vlan_mode = 'Private'; private_vlan_mode = 'Isolated'; primary_vlan_id = 100; secondary_vlan_id = 201 })
                dvd_drives = @(@{ controller_type = 'SCSI'; controller_number = 0; controller_location = 1; path = $iso }, @{ controller_type = 'SCSI'; controller_number = 0; controller_location = 2; path = 'D:\ISO\gone.iso' })
                boot_order = @(@{ kind = 'file'; path = '\EFI\Microsoft\Boot\bootmgfw.efi'; description = 'Windows Boot Manager' })
                automatic_start_action = 'Start'; automatic_start_delay = 120; automatic_stop_action = 'ShutDown' } | ConvertTo-Json -Depth 5 -Compress)
        Mock Get-VMSwitch { [pscustomobject]@{ Name = 'LAN' } }
        # The original, still on this host, has the static MAC the copy gets back.
        Mock Get-VM { @([pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'APP01' }) }
        # The copy's adapter (static, as recorded) and the original's: the same MAC.
        Mock Get-VMNetworkAdapter { @([pscustomobject]@{ Name = 'Prod'; MacAddress = '00155D0A0B0C'; DynamicMacAddressEnabled = $false }) }
        Mock Remove-VMNetworkAdapter { return }
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'APP01-r'; ConfigurationJson = $config; DiskJson = $script:disks }
        $r.ok | Should -BeTrue
        Should -Invoke Set-VMNetworkAdapterVlan -Times 1 -ParameterFilter { $Trunk -and $AllowedVlanIdList -eq '10,20-30' -and $NativeVlanId -eq 10 }
        Should -Invoke Set-VMNetworkAdapterVlan -Times 1 -ParameterFilter { $Isolated -and $PrimaryVlanId -eq 100 -and $SecondaryVlanId -eq 201 }
        Should -Invoke Add-VMDvdDrive -Times 1 -ParameterFilter { $ControllerLocation -eq 1 -and $Path -eq $iso }
        Should -Invoke Add-VMDvdDrive -Times 1 -ParameterFilter { $ControllerLocation -eq 2 -and -not $Path }
        Should -Invoke Set-VM -Times 1 -ParameterFilter { $AutomaticStopAction -eq 'ShutDown' -and $AutomaticStartDelay -eq 120 }
        Should -Invoke Set-VM -Times 1 -ParameterFilter { $AutomaticStartAction -eq 'Nothing' }
        $said = $r.not_restored -join ' '
        $said | Should -BeLike "*the ISO D:\ISO\gone.iso is not on*"
        $said | Should -BeLike "*boot entry 'Windows Boot Manager'*"
        $said | Should -BeLike '*automatic start action: it was Start*'
        $said | Should -BeLike '*static MAC address 00155D0A0B0C is also that of VM APP01*'
    }

    It 'says what it could not restore: a missing switch leaves the adapter disconnected' {
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'ERP01-restored'; ConfigurationJson = $script:config; DiskJson = $script:disks }
        ($r.not_restored -join ' ') | Should -BeLike "*no switch 'LAN'*"
    }

    It 'refuses a restore folder or disk outside the restore roots' {
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = 'C:\Windows'; NewName = 'X'; ConfigurationJson = $script:config; DiskJson = $script:disks }
        $r.error.code | Should -Be 'PATH_NOT_ALLOWED'
        $outside = ConvertTo-Json -Compress @(@{ controller_type = 'SCSI'; controller_number = 0; controller_location = 0; chain = @('D:\Hyper-V\ERP01\ERP01.vhdx') })
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'X'; ConfigurationJson = $script:config; DiskJson = $outside }
        $r.error.code | Should -Be 'PATH_NOT_ALLOWED'
        Should -Invoke New-VM -Times 0
    }

    It 'refuses a VM name that is not one (it would lead Join-Path out of the restore folder)' {
        foreach ($name in @('..\..\Windows', 'a/b', '..', ('x' * 101))) {
            { Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = $name; Mode = 'import' } } | Should -Throw
        }
        Should -Invoke New-VM -Times 0
    }

    It 'never touches an existing VM of the same name' {
        Mock Get-VM { @(New-FakeVm 'ERP01') } -ParameterFilter { $Name }
        $r = Invoke-Script 'Restore-HvbVm' @{ RestorePath = $script:root; NewName = 'ERP01'; ConfigurationJson = $script:config; DiskJson = $script:disks }
        $r.error.code | Should -Be 'VM_EXISTS'
        Should -Invoke New-VM -Times 0
    }
}
