<#
.SYNOPSIS
    Prepares a Hyper-V host for hvbackup with least privilege; run once, elevated, on the host.

.DESCRIPTION
    Idempotent: each run creates what is missing, keeps what is right, repairs what drifted.
    1. An HTTPS WinRM listener (port 5986) with a certificate: the one given by
       -CertificateThumbprint, else a self-signed one issued by a small CA made here, whose
       certificate is exported (PEM) for the orchestrator's `winrm: {ca_file: ...}`.
    2. A firewall rule letting only -OrchestratorAddress reach port 5986.
    3. A dedicated local account (-AccountName) that is *not* an administrator.
    4. A JEA endpoint (-EndpointName, default "hvbackup"): the account may run hvbackup's own
       scripts (installed as the functions of the Hvbackup module, listed in the role
       capability Hvbackup.psrc) and nothing else: no shell, no other cmdlet. The functions run
       as a temporary virtual account in the local Administrators and hvbackup-sql groups.
    5. With -SqlInstance: a SQL login for the hvbackup-sql group, dbcreator (RESTORE
       VERIFYONLY) and db_backupoperator in every writable database but tempdb (master, model
       and msdb included, for a job that names them; model passes it on to databases created
       later). Re-run after restoring or attaching databases.
    -Remove undoes all of it. -DryRun says what would change and changes nothing.
    Writes exactly one JSON object: the steps taken, the CA file, what to put in the
    orchestrator's configuration.

.EXAMPLE
    .\Initialize-HvbHost.ps1 -OrchestratorAddress 10.20.0.5 -SqlInstance 'SQL01\COMPTA'
#>
[CmdletBinding()]
param(
    [string]$OrchestratorAddress,
    [string]$AccountName = 'hvbackup',
    [securestring]$AccountPassword,
    [string]$CertificateThumbprint,
    [string]$CaExportPath = 'C:\ProgramData\hvbackup\hvbackup-winrm-ca.pem',
    [string]$EndpointName = 'hvbackup',
    [string[]]$SqlInstance = @(),
    [switch]$Remove,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'

$FriendlyName = 'hvbackup WinRM'
$CaFriendlyName = 'hvbackup WinRM CA'
$FirewallRule = 'hvbackup-winrm-https'
$OperatorsGroup = 'hvbackup-operators'
$SqlGroup = 'hvbackup-sql'
$ModuleRoot = Join-Path $env:ProgramFiles 'WindowsPowerShell\Modules\Hvbackup'
$Steps = [System.Collections.Generic.List[object]]::new()

function Step([string]$Item, [string]$Action, [string]$Detail) {
    $verb = if ($DryRun -and $Action -notin @('kept', 'absent')) { "would be $Action" } else { $Action }
    $Steps.Add([ordered]@{ item = $Item; action = $verb; detail = $Detail })
}

function Fail([string]$Code, [string]$Message) {
    throw [pscustomobject]@{ Code = $Code; Message = $Message }
}

function Get-HvbCertificate {
    if ($CertificateThumbprint) {
        $given = Get-ChildItem -Path Cert:\LocalMachine\My | Where-Object { $_.Thumbprint -eq $CertificateThumbprint }
        if (-not $given) { Fail 'CERTIFICATE_NOT_FOUND' "No certificate $CertificateThumbprint in LocalMachine\My." }
        Step 'certificate' 'kept' "the certificate given ($CertificateThumbprint)"
        return $given
    }
    $soon = (Get-Date).AddDays(30)
    $mine = Get-ChildItem -Path Cert:\LocalMachine\My |
        Where-Object { $_.FriendlyName -eq $FriendlyName -and $_.NotAfter -gt $soon } |
        Sort-Object NotAfter -Descending | Select-Object -First 1
    if ($mine) {
        Step 'certificate' 'kept' "$($mine.Subject), valid until $($mine.NotAfter.ToString('yyyy-MM-dd'))"
        return $mine
    }
    $names = @([System.Net.Dns]::GetHostName(), [System.Net.Dns]::GetHostEntry('').HostName) | Select-Object -Unique
    if ($DryRun) {
        Step 'certificate' 'created' "CA and certificate for $($names -join ', ')"
        return $null
    }
    $ca = New-SelfSignedCertificate -Subject "CN=hvbackup WinRM CA $($names[0])" -FriendlyName $CaFriendlyName `
        -KeyUsage @('CertSign', 'CRLSign') -KeyExportPolicy NonExportable -NotAfter (Get-Date).AddYears(10) `
        -CertStoreLocation Cert:\LocalMachine\My -TextExtension @('2.5.29.19={critical}{text}ca=1&pathlength=0')
    $cert = New-SelfSignedCertificate -DnsName $names -FriendlyName $FriendlyName -Signer $ca `
        -KeyExportPolicy NonExportable -NotAfter (Get-Date).AddYears(5) -CertStoreLocation Cert:\LocalMachine\My
    Step 'certificate' 'created' "$($cert.Subject) issued by $($ca.Subject)"
    return $cert
}

function Export-HvbCa($Cert) {
    if (-not $Cert) { return $null }
    $issuer = Get-ChildItem -Path Cert:\LocalMachine\My | Where-Object { $_.Subject -eq $Cert.Issuer -and $_.FriendlyName -eq $CaFriendlyName } | Select-Object -First 1
    if (-not $issuer) { return $null }  # a certificate from the MSP's own PKI: its CA is known already
    $pem = "-----BEGIN CERTIFICATE-----`n" + [Convert]::ToBase64String($issuer.RawData, 'InsertLineBreaks') + "`n-----END CERTIFICATE-----`n"
    $same = (Test-Path -LiteralPath $CaExportPath) -and ((Get-Content -LiteralPath $CaExportPath -Raw) -eq $pem)
    if ($same) { Step 'CA file' 'kept' $CaExportPath; return $CaExportPath }
    if (-not $DryRun) {
        New-Item -ItemType Directory -Path (Split-Path $CaExportPath) -Force | Out-Null
        Set-Content -LiteralPath $CaExportPath -Value $pem -NoNewline -Encoding ascii
    }
    Step 'CA file' 'created' "$CaExportPath (copy it to the orchestrator: winrm.ca_file)"
    return $CaExportPath
}

function Set-HvbListener($Cert) {
    $https = Get-ChildItem -Path WSMan:\localhost\Listener | Where-Object { $_.Keys -contains 'Transport=HTTPS' }
    $thumb = if ($Cert) { $Cert.Thumbprint } else { '(new certificate)' }
    if ($https) {
        $current = (Get-ChildItem -Path "WSMan:\localhost\Listener\$($https.Name)" | Where-Object Name -eq 'CertificateThumbprint').Value
        if ($current -eq $thumb) { Step 'listener' 'kept' "HTTPS on 5986 with $thumb"; return }
        if (-not $DryRun) { Set-Item -Path "WSMan:\localhost\Listener\$($https.Name)\CertificateThumbprint" -Value $thumb -Force }
        Step 'listener' 'updated' "HTTPS listener now uses $thumb (was $current)"
        return
    }
    if (-not $DryRun) { New-Item -Path WSMan:\localhost\Listener -Transport HTTPS -Address * -CertificateThumbPrint $thumb -Force | Out-Null }
    Step 'listener' 'created' "HTTPS on 5986 with $thumb"
}

function Set-HvbFirewall {
    $rule = Get-NetFirewallRule -Name $FirewallRule -ErrorAction SilentlyContinue
    if ($rule) {
        $allowed = ($rule | Get-NetFirewallAddressFilter).RemoteAddress
        if ((@($allowed) -join ',') -eq $OrchestratorAddress) { Step 'firewall' 'kept' "5986 open to $OrchestratorAddress only"; return }
        if (-not $DryRun) { Set-NetFirewallRule -Name $FirewallRule -RemoteAddress $OrchestratorAddress }
        Step 'firewall' 'updated' "5986 open to $OrchestratorAddress only (was $(@($allowed) -join ','))"
        return
    }
    if (-not $DryRun) {
        New-NetFirewallRule -Name $FirewallRule -DisplayName 'hvbackup WinRM over HTTPS' -Direction Inbound `
            -Protocol TCP -LocalPort 5986 -RemoteAddress $OrchestratorAddress -Action Allow -Profile Any | Out-Null
    }
    Step 'firewall' 'created' "5986 open to $OrchestratorAddress only"
}

function Set-HvbAccount {
    foreach ($group in @($OperatorsGroup, $SqlGroup)) {
        if (Get-LocalGroup -Name $group -ErrorAction SilentlyContinue) { Step "group $group" 'kept' '' }
        else {
            if (-not $DryRun) { New-LocalGroup -Name $group -Description 'hvbackup (Initialize-HvbHost.ps1)' | Out-Null }
            Step "group $group" 'created' ''
        }
    }
    $user = Get-LocalUser -Name $AccountName -ErrorAction SilentlyContinue
    if ($user) {
        if ($AccountPassword -and -not $DryRun) { Set-LocalUser -Name $AccountName -Password $AccountPassword }
        Step 'account' $(if ($AccountPassword) { 'updated' } else { 'kept' }) "$AccountName (not an administrator)"
    } else {
        if (-not $AccountPassword) { Fail 'BAD_PARAMETER' "The account $AccountName does not exist yet: give -AccountPassword (the orchestrator keeps it in a password_file)." }
        if (-not $DryRun) {
            New-LocalUser -Name $AccountName -Password $AccountPassword -PasswordNeverExpires -UserMayNotChangePassword `
                -Description 'hvbackup orchestrator (JEA endpoint only)' | Out-Null
        }
        Step 'account' 'created' "$AccountName (not an administrator)"
    }
    $members = @(Get-LocalGroupMember -Group $OperatorsGroup -ErrorAction SilentlyContinue | ForEach-Object { $_.Name.Split('\')[-1] })
    if ($members -notcontains $AccountName) {
        if (-not $DryRun) { Add-LocalGroupMember -Group $OperatorsGroup -Member $AccountName }
        Step 'membership' 'created' "$AccountName in $OperatorsGroup"
    } else { Step 'membership' 'kept' "$AccountName in $OperatorsGroup" }
}

function Install-HvbModule {
    # hvbackup's scripts (the folder above this one) become the functions of the Hvbackup
    # module; the role capability makes exactly those visible.
    $scripts = @(Get-ChildItem -Path (Split-Path $PSScriptRoot) -Filter '*-Hvb*.ps1' -File | Sort-Object Name)
    if ($scripts.Count -eq 0) { Fail 'PATH_NOT_FOUND' "No hvbackup script next to ${PSScriptRoot}: copy the whole powershell folder." }
    $body = ($scripts | ForEach-Object { "function $($_.BaseName) {`n$(Get-Content -LiteralPath $_.FullName -Raw)`n}`n" }) -join "`n"
    $psm1 = Join-Path $ModuleRoot 'Hvbackup.psm1'
    $psrcSource = Join-Path $PSScriptRoot 'Hvbackup.psrc'
    $psrc = Join-Path $ModuleRoot 'RoleCapabilities\Hvbackup.psrc'
    $same = (Test-Path -LiteralPath $psm1) -and ((Get-Content -LiteralPath $psm1 -Raw) -eq $body) -and
        (Test-Path -LiteralPath $psrc) -and ((Get-Content -LiteralPath $psrc -Raw) -eq (Get-Content -LiteralPath $psrcSource -Raw))
    if ($same) { Step 'module' 'kept' "$ModuleRoot ($($scripts.Count) functions)"; return $false }
    if (-not $DryRun) {
        New-Item -ItemType Directory -Path (Join-Path $ModuleRoot 'RoleCapabilities') -Force | Out-Null
        Set-Content -LiteralPath $psm1 -Value $body -NoNewline -Encoding utf8
        New-ModuleManifest -Path (Join-Path $ModuleRoot 'Hvbackup.psd1') -RootModule 'Hvbackup.psm1' `
            -FunctionsToExport ($scripts | ForEach-Object BaseName) -CmdletsToExport @() -AliasesToExport @() -VariablesToExport @() `
            -Description 'hvbackup host scripts, exposed through the hvbackup JEA endpoint'
        Copy-Item -LiteralPath $psrcSource -Destination $psrc -Force
    }
    Step 'module' 'updated' "$ModuleRoot ($($scripts.Count) functions)"
    return $true
}

function Register-HvbEndpoint([bool]$Changed) {
    $existing = Get-PSSessionConfiguration -Name $EndpointName -ErrorAction SilentlyContinue
    if ($existing -and -not $Changed) { Step 'endpoint' 'kept' "JEA endpoint $EndpointName"; return }
    $pssc = Join-Path $env:TEMP "hvbackup-$([guid]::NewGuid()).pssc"
    if (-not $DryRun) {
        New-PSSessionConfigurationFile -Path $pssc -SessionType RestrictedRemoteServer -RunAsVirtualAccount `
            -RunAsVirtualAccountGroups @('Administrators', $SqlGroup) -TranscriptDirectory 'C:\ProgramData\hvbackup\transcripts' `
            -RoleDefinitions @{ "$env:COMPUTERNAME\$OperatorsGroup" = @{ RoleCapabilities = 'Hvbackup' } }
        try {
            if ($existing) { Unregister-PSSessionConfiguration -Name $EndpointName -Force -NoServiceRestart }
            Register-PSSessionConfiguration -Name $EndpointName -Path $pssc -Force | Out-Null
        } finally { Remove-Item -LiteralPath $pssc -ErrorAction SilentlyContinue }
    }
    Step 'endpoint' $(if ($existing) { 'updated' } else { 'created' }) "JEA endpoint $EndpointName (role capability Hvbackup for $OperatorsGroup)"
}

function Invoke-HvbSqlGrant([string]$Instance, [bool]$Revoke) {
    $login = "$env:COMPUTERNAME\$SqlGroup"
    $query = if ($Revoke) {
        "IF SUSER_ID(N'$login') IS NOT NULL DROP LOGIN [$login];"
    } else {
        "IF SUSER_ID(N'$login') IS NULL CREATE LOGIN [$login] FROM WINDOWS; ALTER SERVER ROLE dbcreator ADD MEMBER [$login]; " +
        "EXEC sp_MSforeachdb N'IF EXISTS (SELECT 1 FROM sys.databases WHERE name = N''?'' AND database_id <> 2 AND state = 0 AND is_read_only = 0 AND is_in_standby = 0 AND source_database_id IS NULL) BEGIN USE [?]; IF USER_ID(N''$login'') IS NULL CREATE USER [$login] FOR LOGIN [$login]; ALTER ROLE db_backupoperator ADD MEMBER [$login]; END';"
    }
    if (-not $DryRun) {
        $sqlcmd = Get-Command sqlcmd.exe -ErrorAction SilentlyContinue
        if (-not $sqlcmd) { Fail 'SQL_CONNECT_FAILED' 'sqlcmd.exe is not installed: grant the SQL rights by hand (docs/technician.md).' }
        & $sqlcmd.Source -S $Instance -E -b -Q $query | Out-Null
        if ($LASTEXITCODE -ne 0) { Fail 'SQL_CONNECT_FAILED' "sqlcmd on $Instance failed (exit $LASTEXITCODE): run this script as a sysadmin of the instance." }
    }
    Step "SQL $Instance" $(if ($Revoke) { 'removed' } else { 'updated' }) "${login}: dbcreator, db_backupoperator in every writable database but tempdb"
}

function Remove-Hvb {
    if (Get-PSSessionConfiguration -Name $EndpointName -ErrorAction SilentlyContinue) {
        if (-not $DryRun) { Unregister-PSSessionConfiguration -Name $EndpointName -Force }
        Step 'endpoint' 'removed' $EndpointName
    } else { Step 'endpoint' 'absent' $EndpointName }
    if (Test-Path -LiteralPath $ModuleRoot) {
        if (-not $DryRun) { Remove-Item -LiteralPath $ModuleRoot -Recurse -Force }
        Step 'module' 'removed' $ModuleRoot
    } else { Step 'module' 'absent' $ModuleRoot }
    foreach ($instance in $SqlInstance) { Invoke-HvbSqlGrant $instance $true }
    if (Get-LocalUser -Name $AccountName -ErrorAction SilentlyContinue) {
        if (-not $DryRun) { Remove-LocalUser -Name $AccountName }
        Step 'account' 'removed' $AccountName
    } else { Step 'account' 'absent' $AccountName }
    foreach ($group in @($OperatorsGroup, $SqlGroup)) {
        if (Get-LocalGroup -Name $group -ErrorAction SilentlyContinue) {
            if (-not $DryRun) { Remove-LocalGroup -Name $group }
            Step "group $group" 'removed' ''
        } else { Step "group $group" 'absent' '' }
    }
    if (Get-NetFirewallRule -Name $FirewallRule -ErrorAction SilentlyContinue) {
        if (-not $DryRun) { Remove-NetFirewallRule -Name $FirewallRule }
        Step 'firewall' 'removed' $FirewallRule
    } else { Step 'firewall' 'absent' $FirewallRule }
    $mine = @(Get-ChildItem -Path Cert:\LocalMachine\My | Where-Object { $_.FriendlyName -in @($FriendlyName, $CaFriendlyName) })
    $https = Get-ChildItem -Path WSMan:\localhost\Listener | Where-Object { $_.Keys -contains 'Transport=HTTPS' }
    if ($https) {
        $current = (Get-ChildItem -Path "WSMan:\localhost\Listener\$($https.Name)" | Where-Object Name -eq 'CertificateThumbprint').Value
        if ($mine.Thumbprint -contains $current) {  # only the listener this script made
            if (-not $DryRun) { Remove-Item -Path "WSMan:\localhost\Listener\$($https.Name)" -Recurse -Force }
            Step 'listener' 'removed' 'HTTPS listener of hvbackup'
        } else { Step 'listener' 'kept' 'an HTTPS listener with another certificate: not ours' }
    } else { Step 'listener' 'absent' '' }
    foreach ($cert in $mine) {
        if (-not $DryRun) { Remove-Item -Path "Cert:\LocalMachine\My\$($cert.Thumbprint)" }
        Step 'certificate' 'removed' $cert.Subject
    }
}

try {
    $principal = [Security.Principal.WindowsPrincipal][Security.Principal.WindowsIdentity]::GetCurrent()
    if (-not $principal.IsInRole([Security.Principal.WindowsBuiltInRole]::Administrator)) {
        Fail 'ACCESS_DENIED' 'Run this script in an elevated PowerShell (Run as administrator).'
    }
    if ($Remove) {
        Remove-Hvb
        $result = [ordered]@{ ok = $true; dry_run = [bool]$DryRun; removed = $true; steps = $Steps }
    } else {
        if (-not $OrchestratorAddress) { Fail 'BAD_PARAMETER' 'Give -OrchestratorAddress: the address (or subnet) the orchestrator connects from.' }
        $cert = Get-HvbCertificate
        $caFile = Export-HvbCa $cert
        Set-HvbListener $cert
        Set-HvbFirewall
        Set-HvbAccount
        $changed = Install-HvbModule
        Register-HvbEndpoint $changed
        foreach ($instance in $SqlInstance) { Invoke-HvbSqlGrant $instance $false }
        $result = [ordered]@{
            ok = $true; dry_run = [bool]$DryRun; removed = $false; steps = $Steps
            ca_file = $caFile
            configuration = [ordered]@{ port = 5986; scheme = 'https'; auth = 'ntlm'; username = "$env:COMPUTERNAME\$AccountName"; configuration_name = $EndpointName }
        }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'ONBOARDING_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; steps = $Steps; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
