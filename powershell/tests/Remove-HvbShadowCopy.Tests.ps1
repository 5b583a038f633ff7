BeforeAll { . (Join-Path $PSScriptRoot 'TestHelpers.ps1') }

Describe 'Remove-HvbShadowCopy' {
    It 'reports a shadow copy already gone without failing' {
        Mock Get-CimInstance { $null } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ ShadowId = @('{GONE}') }
        $r.ok | Should -BeTrue
        $r.shadow_copies[0].already_absent | Should -BeTrue
    }

    It 'removes the copy it finds' {
        Mock Get-CimInstance { [pscustomobject]@{ ID = '{ABC}' } } -ParameterFilter { $ClassName -eq 'Win32_ShadowCopy' }
        Mock Remove-CimInstance { return }
        $r = Invoke-Script 'Remove-HvbShadowCopy' @{ ShadowId = @('{ABC}') }
        $r.shadow_copies[0].removed | Should -BeTrue
        Should -Invoke Remove-CimInstance -Times 1
    }
}
