BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'New-HvbShadowCopy' {
    BeforeEach {
        Mock Test-Path { $true } -ParameterFilter { $LiteralPath -eq 'D:\Partages' }
        Mock New-Item { return }
        Mock Add-Content { return }
        Set-HvbTestRoots @{ staging = @(); shares = @('D:\Partages', 'D:\Nope'); restore = @() }
    }

    It 'maps return code <code> to <name>' -TestCases @(
        @{ code = 8; name = 'VSS_MAX_SHADOW_COPIES' },
        @{ code = 9; name = 'VSS_OPERATION_IN_PROGRESS' },
        @{ code = 6; name = 'VSS_INSUFFICIENT_STORAGE' },
        @{ code = 1; name = 'VSS_ACCESS_DENIED' }
    ) {
        param($code, $name)
        Mock Invoke-CimMethod { [pscustomobject]@{ ReturnValue = $code; ShadowID = $null } }
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1' }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be $name
    }

    It 'records the shadow copy ID before exposing it' {
        Mock Invoke-CimMethod { [pscustomobject]@{ ReturnValue = 0; ShadowID = '{ABC}' } }
        Mock Get-CimInstance { [pscustomobject]@{ ID = '{ABC}'; DeviceObject = '\\?\GLOBALROOT\Device\HarddiskVolumeShadowCopy7' } }
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -like '*shadow*' }
        $r = Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Partages'); RunId = 'r1'; LinkRoot = 'C:\hvb\shadow' }
        Should -Invoke Add-Content -ParameterFilter { $Value -eq '{ABC}' } -Times 1
    }

    It 'refuses a folder that does not exist' {
        Mock Test-Path { $false } -ParameterFilter { $LiteralPath -eq 'D:\Nope' }
        (Invoke-Script 'New-HvbShadowCopy' @{ Path = @('D:\Nope'); RunId = 'r1' }).error.code | Should -Be 'PATH_NOT_FOUND'
    }

    It 'refuses a folder outside the share roots (registry hives of C:)' {
        Mock Invoke-CimMethod { throw 'must not be called' }
        foreach ($bad in @('C:\', 'C:\Windows\System32\config', 'D:\Partages\..\Hyper-V', '\\srv\share')) {
            (Invoke-Script 'New-HvbShadowCopy' @{ Path = @($bad); RunId = 'r1' }).error.code | Should -Be 'PATH_NOT_ALLOWED'
        }
    }
}
