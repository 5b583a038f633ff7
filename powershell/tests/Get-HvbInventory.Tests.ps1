# Run with: Invoke-Pester -Path powershell/tests (Pester 5). Cmdlets are mocked: nothing changes.
BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Get-HvbInventory' {
    BeforeEach {
        Mock Get-CimInstance { [pscustomobject]@{ Caption = 'Windows Server 2022'; Version = '10.0.20348' } } -ParameterFilter { $ClassName -eq 'Win32_OperatingSystem' }
        Mock Get-CimInstance { @([pscustomobject]@{ DriveLetter = 'D:'; Label = 'Data'; Capacity = 2TB; FreeSpace = 1TB }) } -ParameterFilter { $ClassName -eq 'Win32_Volume' }
        Mock Get-CimInstance { @() } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
        Mock Get-Item { [pscustomobject]@{ VersionInfo = [pscustomobject]@{ ProductVersion = '10.0.20348.1' } } } -ParameterFilter { $Path -like '*vmms.exe' }
        Mock Get-VM { @(New-FakeVm 'ERP01') }
        Mock Get-VMHardDiskDrive { [pscustomobject]@{ Path = 'D:\Hyper-V\ERP01\ERP01.vhdx'; ControllerType = 'SCSI'; ControllerNumber = 0; ControllerLocation = 0 } }
        Mock Get-VHD { [pscustomobject]@{ Path = $Path; ParentPath = $null; Size = 100GB; FileSize = 40GB; VhdFormat = 'VHDX' } }
        Mock Get-VMSnapshot { @([pscustomobject]@{ Id = [guid]::NewGuid(); Name = 'hvbackup-old'; SnapshotType = 'Recovery'; CreationTime = (Get-Date).AddDays(-2) }) }
        Mock Get-VMIntegrationService { @(
                [pscustomobject]@{ Id = 'Microsoft:X\84EAAE65-2F2E-45F5-9BB5-0E857DC8EB47'; Enabled = $true; PrimaryOperationalStatus = 'Ok' },
                [pscustomobject]@{ Id = 'Microsoft:X\5CED1297-4598-4915-A5FC-AD21BB4D02A4'; Enabled = $true; PrimaryOperationalStatus = 'Ok' }) }
    }

    It 'describes VMs, the VSS service found by ID, volumes and leftovers' {
        $r = Invoke-Script 'Get-HvbInventory' @{ SkipSql = $true }
        $r.ok | Should -BeTrue
        $r.vms[0].name | Should -Be 'ERP01'
        $r.vms[0].vss.healthy | Should -BeTrue
        $r.vms[0].disks[0].chain | Should -Be @('D:\Hyper-V\ERP01\ERP01.vhdx')
        $r.volumes[0].free_bytes | Should -Be 1TB
        $r.leftovers.checkpoints[0].name | Should -Be 'hvbackup-old'
    }

    It 'reports an unhealthy VSS service whatever the host language' {
        Mock Get-VMIntegrationService { @([pscustomobject]@{ Id = 'Microsoft:X\5CED1297-4598-4915-A5FC-AD21BB4D02A4'; Enabled = $true; PrimaryOperationalStatus = 'LostCommunication'; Name = 'Sauvegarde (cliché instantané de volume)' }) }
        $r = Invoke-Script 'Get-HvbInventory' @{ SkipSql = $true }
        $r.vms[0].vss.healthy | Should -BeFalse
        $r.vms[0].vss.status | Should -Be 'LostCommunication'
    }

    It 'returns one error object when Hyper-V cannot be queried' {
        Mock Get-VM { throw 'The Hyper-V service is not running' }
        $r = Invoke-Script 'Get-HvbInventory' @{ SkipSql = $true }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'INVENTORY_FAILED'
    }
}
