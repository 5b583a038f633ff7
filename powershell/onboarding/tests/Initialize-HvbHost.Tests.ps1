# Pester 5 tests of the onboarding script, on any Windows machine: every system change is
# mocked (certificates, WSMan, firewall, local accounts, session configurations, sqlcmd), so
# the tests check the decisions: what is created, kept, repaired and removed, and that -DryRun
# changes nothing. Run: Invoke-Pester powershell/onboarding/tests (elevated: the script refuses
# to run otherwise).

BeforeAll {
    $script:Script = Join-Path (Split-Path $PSScriptRoot) 'Initialize-HvbHost.ps1'
    $script:Password = ConvertTo-SecureString 'a long test password 1' -AsPlainText -Force
    function Invoke-Onboarding([hashtable]$Params) {
        $out = & $script:Script @Params
        return ($out | Select-Object -Last 1) | ConvertFrom-Json
    }
    function Action($Result, [string]$Item) { ($Result.steps | Where-Object item -eq $Item).action }
}

Describe 'Initialize-HvbHost' {
    BeforeEach {
        $script:state = @{ users = @(); groups = @(); rule = $null; endpoint = $null; certs = @(); listener = $null }
        Mock Get-LocalUser { $script:state.users | Where-Object Name -eq $Name }
        Mock New-LocalUser { $script:state.users += [pscustomobject]@{ Name = $Name; SID = [System.Security.Principal.SecurityIdentifier]'S-1-5-21-1-2-3-1001' } }
        Mock Set-LocalUser { $null }
        Mock Remove-LocalUser { $script:state.users = @() }
        Mock Get-LocalGroup { $script:state.groups | Where-Object Name -eq $Name }
        Mock New-LocalGroup { $script:state.groups += [pscustomobject]@{ Name = $Name } }
        Mock Remove-LocalGroup { $null }
        Mock Get-LocalGroupMember { $script:state.users | ForEach-Object { [pscustomobject]@{ Name = "HOST\$($_.Name)" } } }
        Mock Add-LocalGroupMember { $null }
        Mock Get-NetFirewallRule { $script:state.rule }
        Mock Get-NetFirewallAddressFilter { [pscustomobject]@{ RemoteAddress = $script:state.rule.RemoteAddress } }
        Mock New-NetFirewallRule { $script:state.rule = [pscustomobject]@{ Name = $Name; RemoteAddress = $RemoteAddress } }
        Mock Set-NetFirewallRule { $script:state.rule.RemoteAddress = $RemoteAddress }
        Mock Remove-NetFirewallRule { $script:state.rule = $null }
        Mock Get-PSSessionConfiguration { $script:state.endpoint }
        Mock Register-PSSessionConfiguration { $script:state.endpoint = [pscustomobject]@{ Name = $Name } }
        Mock Unregister-PSSessionConfiguration { $script:state.endpoint = $null }
        Mock New-PSSessionConfigurationFile { $null }
        Mock New-ModuleManifest { $null }
        Mock New-SelfSignedCertificate {
            $san = [pscustomobject]@{ Oid = [pscustomobject]@{ Value = '2.5.29.17' }; Text = "$TextExtension" } |
                Add-Member -MemberType ScriptMethod -Name Format -Value { param($multiLine) $this.Text } -PassThru
            $c = [pscustomobject]@{ Subject = 'CN=x'; Issuer = 'CN=ca'; Thumbprint = 'AB12'; NotAfter = (Get-Date).AddYears(5); FriendlyName = $FriendlyName; RawData = [byte[]](1, 2, 3); Extensions = @($san) }
            $script:state.certs += $c; $c
        }
        Mock Get-NetIPAddress { @([pscustomobject]@{ IPAddress = '192.0.2.10' }, [pscustomobject]@{ IPAddress = '127.0.0.1' }) }
        # roots.json and its folder: kept in $script:state, never written to the machine.
        Mock Test-Path { [bool]$script:state.roots } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
        Mock Get-Content { $script:state.roots } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
        Mock Set-Content { $script:state.roots = $Value } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
        Mock Remove-Item { $script:state.roots = $null } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
        Mock Test-Path { $true } -ParameterFilter { $LiteralPath -like '*ProgramData\hvbackup' }
        Mock New-Item { return } -ParameterFilter { $Path -like '*ProgramData\hvbackup' }
        Mock Get-Acl { $script:state.acl }
        Mock Set-Acl { $script:state.acl = [pscustomobject]@{ AreAccessRulesProtected = $true; Access = @() } }
        # The root's access rules, kept in $script:state: the ACE this script adds, or none.
        $script:state.aces = @()
        Mock Test-Path { $true } -ParameterFilter { $LiteralPath -eq 'D:\Partages' }
        Mock Get-Item -ParameterFilter { $LiteralPath -eq 'D:\Partages' } {
            $acl = [pscustomobject]@{} |
                Add-Member -MemberType ScriptMethod -Name GetAccessRules -Value { param($explicit, $inherited, $type) $script:state.aces } -PassThru |
                Add-Member -MemberType ScriptMethod -Name AddAccessRule -Value { param($rule) $script:state.aces += $rule } -PassThru |
                Add-Member -MemberType ScriptMethod -Name PurgeAccessRules -Value { param($sid) $script:state.aces = @() } -PassThru
            [pscustomobject]@{} |
                Add-Member -MemberType ScriptMethod -Name GetAccessControl -Value { param($sections) $acl }.GetNewClosure() -PassThru |
                Add-Member -MemberType ScriptMethod -Name SetAccessControl -Value { param($acl) $script:state.set += 1 } -PassThru
        }
        $script:state.set = 0
        Mock Get-ChildItem -ParameterFilter { $Path -eq 'Cert:\LocalMachine\My' } { $script:state.certs }
        Mock Get-ChildItem -ParameterFilter { $Path -eq 'WSMan:\localhost\Listener' } { $script:state.listener }
        Mock New-Item -ParameterFilter { $Path -eq 'WSMan:\localhost\Listener' } { $script:state.listener = [pscustomobject]@{ Name = 'Listener_1'; Keys = @('Transport=HTTPS') } }
    }

    It 'names Administrators by its SID (localized names), certifies the IP addresses and records the roots' {
        $r = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password; ShareRoot = @('D:\Partages') }
        $r.ok | Should -BeTrue
        $admins = ([System.Security.Principal.SecurityIdentifier]'S-1-5-32-544').Translate([System.Security.Principal.NTAccount]).Value.Split('\')[-1]
        Should -Invoke New-PSSessionConfigurationFile -Times 1 -ParameterFilter { $RunAsVirtualAccountGroups -contains $admins -and $RunAsVirtualAccountGroups -contains 'hvbackup-sql' }
        Should -Invoke New-SelfSignedCertificate -Times 1 -ParameterFilter { "$TextExtension" -like '*IPAddress=192.0.2.10*' -and "$TextExtension" -notlike '*127.0.0.1*' }
        $r.addresses | Should -Contain '192.0.2.10'
        $roots = $script:state.roots | ConvertFrom-Json
        $roots.staging | Should -Be @('D:\hvbackup-staging')
        $roots.shares | Should -Be @('D:\Partages')
        Action $r 'roots' | Should -Be 'created'
        Action $r 'data folder' | Should -Be 'updated'
        $again = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; ShareRoot = @('D:\Partages') }
        Action $again 'roots' | Should -Be 'kept'
        Action $again 'certificate' | Should -Be 'kept'
        Action $again 'data folder' | Should -Be 'kept'
    }

    It 'grants the account inherited Read on each share root, once, and takes it back with -Remove' {
        $r = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password; ShareRoot = @('D:\Partages') }
        Action $r 'read on D:\Partages' | Should -Be 'created'
        $script:state.aces[0].FileSystemRights.HasFlag([System.Security.AccessControl.FileSystemRights]::ReadAndExecute) | Should -BeTrue
        "$($script:state.aces[0].InheritanceFlags)" | Should -Be 'ContainerInherit, ObjectInherit'
        $script:state.aces[0].IdentityReference.Value | Should -Be 'S-1-5-21-1-2-3-1001'
        $again = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; ShareRoot = @('D:\Partages') }
        Action $again 'read on D:\Partages' | Should -Be 'kept'
        $script:state.set | Should -Be 1
        $dry = Invoke-Onboarding @{ Remove = $true; DryRun = $true }
        Action $dry 'read on D:\Partages' | Should -Be 'would be removed'
        $script:state.aces.Count | Should -Be 1
        $gone = Invoke-Onboarding @{ Remove = $true }
        Action $gone 'read on D:\Partages' | Should -Be 'removed'
        $script:state.aces.Count | Should -Be 0
    }

    It 'remakes its certificate when an address is missing from it' {
        Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password } | Out-Null
        $r = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; IPAddress = @('198.51.100.7') }
        Action $r 'certificate' | Should -Be 'created'
    }

    It 'refuses root <root> for <kind>' -TestCases @(
        @{ kind = 'StagingRoot'; root = 'D:\' },
        @{ kind = 'ShareRoot'; root = 'C:\' },
        @{ kind = 'ShareRoot'; root = 'C:\Windows\System32\config' },
        @{ kind = 'StagingRoot'; root = 'C:\ProgramData' },
        @{ kind = 'RestoreRoot'; root = '\\nas\restore' }
    ) {
        param($kind, $root)
        $r = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password; $kind = @($root) }
        $r.error.code | Should -Be 'BAD_PARAMETER'
        $script:state.roots | Should -BeNullOrEmpty
    }

    It 'refuses to run without -OrchestratorAddress' {
        $r = Invoke-Onboarding @{ AccountPassword = $script:Password; DryRun = $true }
        $r.ok | Should -BeFalse
        $r.error.code | Should -Be 'BAD_PARAMETER'
    }

    It 'creates everything once, then keeps it (idempotent)' {
        $first = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password }
        $first.ok | Should -BeTrue
        Action $first 'account' | Should -Be 'created'
        Action $first 'firewall' | Should -Be 'created'
        Action $first 'endpoint' | Should -Be 'created'
        $first.configuration.configuration_name | Should -Be 'hvbackup'
        Should -Invoke New-NetFirewallRule -Times 1 -ParameterFilter { $RemoteAddress -eq '10.20.0.5' -and $LocalPort -eq 5986 }
        Should -Invoke New-PSSessionConfigurationFile -Times 1 -ParameterFilter { $SessionType -eq 'RestrictedRemoteServer' -and $RunAsVirtualAccount }
        $second = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5' }
        Action $second 'account' | Should -Be 'kept'
        Action $second 'firewall' | Should -Be 'kept'
        Should -Invoke New-LocalUser -Times 1
    }

    It 'repairs a firewall rule that drifted' {
        $script:state.rule = [pscustomobject]@{ Name = 'hvbackup-winrm-https'; RemoteAddress = 'Any' }
        $r = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password }
        Action $r 'firewall' | Should -Be 'updated'
        Should -Invoke Set-NetFirewallRule -Times 1 -ParameterFilter { $RemoteAddress -eq '10.20.0.5' }
    }

    It 'changes nothing with -DryRun' {
        $r = Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password; DryRun = $true }
        $r.dry_run | Should -BeTrue
        Action $r 'account' | Should -Be 'would be created'
        Should -Invoke New-LocalUser -Times 0
        Should -Invoke New-NetFirewallRule -Times 0
        Should -Invoke Register-PSSessionConfiguration -Times 0
    }

    It 'removes what it made with -Remove, and says what was already absent' {
        Invoke-Onboarding @{ OrchestratorAddress = '10.20.0.5'; AccountPassword = $script:Password } | Out-Null
        $r = Invoke-Onboarding @{ Remove = $true }
        $r.removed | Should -BeTrue
        Action $r 'endpoint' | Should -Be 'removed'
        Action $r 'account' | Should -Be 'removed'
        Should -Invoke Unregister-PSSessionConfiguration -Times 1
        (Invoke-Onboarding @{ Remove = $true }).steps | Where-Object item -eq 'account' | ForEach-Object action | Should -Be 'absent'
    }
}
