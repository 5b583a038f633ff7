<#
.SYNOPSIS
    Prepares a Hyper-V host for hvbackup with least privilege; run once, elevated, on the host.

.DESCRIPTION
    Idempotent: each run creates what is missing, keeps what is right, repairs what drifted.
    1. An HTTPS WinRM listener (port 5986) with a certificate: the one given by
       -CertificateThumbprint, else a self-signed one issued by a small CA made here, whose
       certificate is exported (PEM) for the orchestrator's `winrm: {ca_file: ...}`. It names
       the host's DNS names and IP addresses (-IPAddress, default: its IPv4 addresses), so the
       orchestrator may reach it by either; a certificate of ours lacking an address is remade.
    2. A firewall rule letting only -OrchestratorAddress reach port 5986.
    3. A dedicated local account (-AccountName) that is *not* an administrator.
    4. A JEA endpoint (-EndpointName, default "hvbackup"): the account may run hvbackup's own
       scripts (installed as the functions of the Hvbackup module, listed in the role
       capability Hvbackup.psrc) and nothing else: no shell, no other cmdlet. The functions run
       as a temporary virtual account in the local Administrators (named by its well-known
       SID S-1-5-32-544: the name is localized) and hvbackup-sql groups.
    4b. The folders hvbackup may touch, in %ProgramData%\hvbackup\roots.json (that folder
       readable by Administrators and SYSTEM only): -StagingRoot (staging of exports and SQL
       dumps, deleted run by run), -ShareRoot (folders of files jobs), -RestoreRoot (restored
       VMs). Every host script refuses any other path (PATH_NOT_ALLOWED). Local folders only;
       never a volume root for staging or restore, never Windows, Program Files or ProgramData.
    4c. On each -ShareRoot, one inherited ACE: the account, ReadAndExecute, ContainerInherit
       and ObjectInherit. Files jobs read shadow copies through a share that grants the account
       Read, but each file's NTFS ACL applies too and the stricter wins: the ACE reaches every
       entry that inherits (a copy keeps the ACLs); an entry with inheritance disabled is
       refused, and the run names it (HVB-SOURCE-DENIED). Access rules only (never the owner).
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
    [string[]]$IPAddress = @(),
    [string[]]$StagingRoot = @('D:\hvbackup-staging'),
    [string[]]$ShareRoot = @(),
    [string[]]$RestoreRoot = @('D:\Restore'),
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
$DataRoot = Join-Path $env:ProgramData 'hvbackup'
$RootsFile = Join-Path $DataRoot 'roots.json'
# Built-in groups by well-known SID: their names are localized ("Administrateurs").
$AdministratorsSid = 'S-1-5-32-544'
$SystemSid = 'S-1-5-18'
$Steps = [System.Collections.Generic.List[object]]::new()

function Step([string]$Item, [string]$Action, [string]$Detail) {
    $verb = if ($DryRun -and $Action -notin @('kept', 'absent')) { "would be $Action" } else { $Action }
    $Steps.Add([ordered]@{ item = $Item; action = $verb; detail = $Detail })
}

function Fail([string]$Code, [string]$Message) {
    throw [pscustomobject]@{ Code = $Code; Message = $Message }
}

function Get-HvbGroupName([string]$Sid) {
    ([System.Security.Principal.SecurityIdentifier]$Sid).Translate([System.Security.Principal.NTAccount]).Value.Split('\')[-1]
}

function Get-HvbAddresses {
    if ($IPAddress.Count) { return @($IPAddress) }
    @(Get-NetIPAddress -AddressFamily IPv4 -ErrorAction SilentlyContinue |
        Where-Object { $_.IPAddress -notlike '127.*' -and $_.IPAddress -notlike '169.254.*' } | ForEach-Object IPAddress)
}

function Test-HvbSan($Cert, [string[]]$Addresses) {
    # The SAN text is localized ("IP Address=", "Adresse IP="): look for the addresses alone.
    $san = @($Cert.Extensions | Where-Object { $_.Oid.Value -eq '2.5.29.17' } | ForEach-Object { $_.Format($false) }) -join ','
    foreach ($address in $Addresses) { if ($san -notmatch "(^|[^0-9.])$([regex]::Escape($address))($|[^0-9.])") { return $false } }
    return $true
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
    $addresses = @(Get-HvbAddresses)
    if ($mine -and -not (Test-HvbSan $mine $addresses)) { $mine = $null }  # remade with every address
    if ($mine) {
        Step 'certificate' 'kept' "$($mine.Subject), valid until $($mine.NotAfter.ToString('yyyy-MM-dd'))"
        return $mine
    }
    $names = @([System.Net.Dns]::GetHostName(), [System.Net.Dns]::GetHostEntry('').HostName) | Select-Object -Unique
    if ($DryRun) {
        Step 'certificate' 'created' "CA and certificate for $((@($names) + $addresses) -join ', ')"
        return $null
    }
    $ca = New-SelfSignedCertificate -Subject "CN=hvbackup WinRM CA $($names[0])" -FriendlyName $CaFriendlyName `
        -KeyUsage @('CertSign', 'CRLSign') -KeyExportPolicy NonExportable -NotAfter (Get-Date).AddYears(10) `
        -CertStoreLocation Cert:\LocalMachine\My -TextExtension @('2.5.29.19={critical}{text}ca=1&pathlength=0')
    # -DnsName makes DNS entries only: an address needs an IPAddress entry of the SAN.
    $san = '2.5.29.17={text}' + ((@($names | ForEach-Object { "DNS=$_" }) + @($addresses | ForEach-Object { "IPAddress=$_" })) -join '&')
    $cert = New-SelfSignedCertificate -Subject "CN=$($names[0])" -TextExtension @($san) -FriendlyName $FriendlyName -Signer $ca `
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

function Test-HvbRoot([string]$Root, [string]$Kind) {
    if ($Root -notmatch '^[A-Za-z]:\\') { Fail 'BAD_PARAMETER' "-${Kind}Root ${Root}: give a local folder (D:\...), not a share or a relative path." }
    $full = [System.IO.Path]::GetFullPath($Root).TrimEnd('\')
    if ($Kind -ne 'Share' -and $full.Length -le 2) { Fail 'BAD_PARAMETER' "-${Kind}Root ${Root}: a whole volume; give a folder of its own (D:\hvbackup-staging)." }
    $protected = @($env:SystemRoot, $env:ProgramFiles, ${env:ProgramFiles(x86)}, $env:ProgramData) | Where-Object { $_ }
    foreach ($p in $protected) {
        $system = [System.IO.Path]::GetFullPath($p).TrimEnd('\')
        if ($full -eq $system -or $system.StartsWith($full + '\', [System.StringComparison]::OrdinalIgnoreCase) -or $full.StartsWith($system + '\', [System.StringComparison]::OrdinalIgnoreCase)) {
            Fail 'BAD_PARAMETER' "-${Kind}Root ${Root} overlaps $system, which hvbackup must never read, write or delete."
        }
    }
    return $full
}

function Set-HvbRoots {
    $roots = [ordered]@{
        staging = @($StagingRoot | ForEach-Object { Test-HvbRoot $_ 'Staging' })
        shares  = @($ShareRoot | ForEach-Object { Test-HvbRoot $_ 'Share' })
        restore = @($RestoreRoot | ForEach-Object { Test-HvbRoot $_ 'Restore' })
    }
    $json = $roots | ConvertTo-Json -Compress -Depth 3
    $detail = "staging: $($roots.staging -join ', '); shares: $($roots.shares -join ', '); restore: $($roots.restore -join ', ')"
    $present = Test-Path -LiteralPath $RootsFile
    if ($present -and ((Get-Content -LiteralPath $RootsFile -Raw) -eq $json)) { Step 'roots' 'kept' $detail }
    else {
        if (-not $DryRun) {
            New-Item -ItemType Directory -Path $DataRoot -Force | Out-Null
            Set-Content -LiteralPath $RootsFile -Value $json -NoNewline -Encoding utf8
        }
        Step 'roots' $(if ($present) { 'updated' } else { 'created' }) $detail
    }
    # ProgramData lets every user create files in its folders: this one is for Administrators
    # and SYSTEM only (the roots, the shadow copy record, the transcripts).
    $acl = if (Test-Path -LiteralPath $DataRoot) { Get-Acl -LiteralPath $DataRoot }
    $others = @($acl.Access | Where-Object { $_.IdentityReference.Translate([System.Security.Principal.SecurityIdentifier]).Value -notin @($AdministratorsSid, $SystemSid) })
    if ($acl -and $acl.AreAccessRulesProtected -and $others.Count -eq 0) { Step 'data folder' 'kept' "$DataRoot (Administrators, SYSTEM)"; return }
    if (-not $DryRun) {
        $acl = New-Object System.Security.AccessControl.DirectorySecurity
        $acl.SetAccessRuleProtection($true, $false)
        foreach ($sid in @($AdministratorsSid, $SystemSid)) {
            $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule((New-Object System.Security.Principal.SecurityIdentifier $sid), 'FullControl', 'ContainerInherit, ObjectInherit', 'None', 'Allow')))
        }
        Set-Acl -LiteralPath $DataRoot -AclObject $acl
    }
    Step 'data folder' 'updated' "$DataRoot (Administrators, SYSTEM)"
}

function Set-HvbShareRead([bool]$Revoke) {
    # Not Backup Operators: SeBackupPrivilege (honoured over SMB with FILE_OPEN_FOR_BACKUP_INTENT)
    # reads every file of the host, the registry hives included (docs/host-scripts.md).
    $roots = if ($Revoke) {
        if (Test-Path -LiteralPath $RootsFile) { @((Get-Content -LiteralPath $RootsFile -Raw | ConvertFrom-Json).shares | Where-Object { $_ }) } else { @() }
    } else { @($ShareRoot | ForEach-Object { Test-HvbRoot $_ 'Share' }) }
    $user = Get-LocalUser -Name $AccountName -ErrorAction SilentlyContinue
    foreach ($root in $roots) {
        $item = "read on $root"
        if (-not (Test-Path -LiteralPath $root -PathType Container)) {
            if ($Revoke) { Step $item 'absent' "$root no longer exists"; continue }
            Fail 'PATH_NOT_FOUND' "-ShareRoot ${root}: the folder does not exist on $env:COMPUTERNAME."
        }
        if (-not $user) {
            if ($Revoke) { Step $item 'absent' "no account $AccountName" } else { Step $item 'created' "$AccountName ReadAndExecute, inherited" }
            continue
        }
        $folder = Get-Item -LiteralPath $root
        $acl = $folder.GetAccessControl('Access')
        $mine = @($acl.GetAccessRules($true, $false, [System.Security.Principal.SecurityIdentifier]) | Where-Object { $_.IdentityReference.Value -eq $user.SID.Value })
        if ($Revoke) {
            if (-not $mine.Count) { Step $item 'absent' $AccountName; continue }
            if (-not $DryRun) { $acl.PurgeAccessRules($user.SID); $folder.SetAccessControl($acl) }
            Step $item 'removed' "$AccountName's ACE"
            continue
        }
        $read = [System.Security.AccessControl.FileSystemRights]::ReadAndExecute
        $both = [System.Security.AccessControl.InheritanceFlags]'ContainerInherit, ObjectInherit'
        $right = @($mine | Where-Object { $_.AccessControlType -eq 'Allow' -and (($_.FileSystemRights -band $read) -eq $read) -and $_.InheritanceFlags -eq $both -and $_.PropagationFlags -eq 'None' })
        if ($right.Count) { Step $item 'kept' "$AccountName ReadAndExecute, inherited"; continue }
        if (-not $DryRun) {
            $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($user.SID, $read, $both, 'None', 'Allow')))
            $folder.SetAccessControl($acl)
        }
        Step $item 'created' "$AccountName ReadAndExecute, inherited (entries with inheritance disabled stay refused)"
    }
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
            -RunAsVirtualAccountGroups @((Get-HvbGroupName $AdministratorsSid), $SqlGroup) -TranscriptDirectory 'C:\ProgramData\hvbackup\transcripts' `
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
    Set-HvbShareRead $true  # before the roots file and the account are gone
    if (Test-Path -LiteralPath $RootsFile) {
        if (-not $DryRun) { Remove-Item -LiteralPath $RootsFile }
        Step 'roots' 'removed' $RootsFile
    } else { Step 'roots' 'absent' $RootsFile }
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
        Set-HvbRoots
        Set-HvbShareRead $false
        $changed = Install-HvbModule
        Register-HvbEndpoint $changed
        foreach ($instance in $SqlInstance) { Invoke-HvbSqlGrant $instance $false }
        $result = [ordered]@{
            ok = $true; dry_run = [bool]$DryRun; removed = $false; steps = $Steps
            ca_file = $caFile
            addresses = @(Get-HvbAddresses)
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
