<#
.SYNOPSIS
    Brings a VM back from restored files: imports an exported VM, or recreates it from its
    recorded configuration and restored disks. The new VM is left off.

.DESCRIPTION
    -Mode import: the folder holds an export (Virtual Machines\*.vmcx); Import-VM -Copy
    -GenerateNewId copies it under -RestorePath, so it never collides with the original.
    -Mode recreate: -ConfigurationJson is the "configuration" recorded at backup time by
    New-HvbCheckpoint.ps1, -DiskJson lists the restored disk chains ({"controller_type",
    "controller_number", "controller_location", "chain": [restored files, child first]}).
    Each chain is re-linked (Set-VHD -ParentPath), then a new VM is created with the SCSI
    controllers, Secure Boot template, vTPM, static MAC addresses and access VLANs it had, and
    the disks attached at their original controller locations.
    -SwitchName connects every network adapter to that switch (both modes); an adapter whose
    switch does not exist here is left disconnected. "not_restored" lists, in plain words,
    whatever of the original VM could not be brought back (empty when everything was).
    -RestorePath and every disk file must lie inside a restore root recorded at onboarding.
    -NewName is a VM name, also the folder made under -RestorePath: letters, digits, space,
    . _ - ( ), at most 100 characters, no ".." (PowerShell refuses anything else).
    An existing VM with the target name is never touched: the script stops with VM_EXISTS.

    Writes exactly one JSON object. -DryRun reports what would be done and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$RestorePath,
    [Parameter(Mandatory)][ValidatePattern('^(?!.*\.\.)\w[\w .()-]{0,99}$')][string]$NewName,
    [ValidateSet('import', 'recreate')][string]$Mode = 'recreate',
    [string]$ConfigurationJson,
    [string]$DiskJson,
    [string]$SwitchName,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Fail([string]$Code, [string]$Message) {
    throw [pscustomobject]@{ Code = $Code; Message = $Message }
}

function Assert-HvbRoot([string]$Path, [string]$Kind) {
    # The folders hvbackup may touch are the roots Initialize-HvbHost.ps1 wrote on this host
    # (-StagingRoot, -ShareRoot, -RestoreRoot); the caller never chooses them. Local paths only.
    $file = Join-Path $env:ProgramData 'hvbackup\roots.json'
    if (-not (Test-Path -LiteralPath $file)) { throw [pscustomobject]@{ Code = 'ROOTS_NOT_CONFIGURED'; Message = "$file is missing: run Initialize-HvbHost.ps1 on $env:COMPUTERNAME (it records the folders hvbackup may use)." } }
    $roots = @((Get-Content -LiteralPath $file -Raw | ConvertFrom-Json).$Kind | Where-Object { $_ })
    $full = if ($Path -match '^[A-Za-z]:\\') { [System.IO.Path]::GetFullPath($Path).TrimEnd('\') } else { $null }
    foreach ($root in $roots) {
        $r = [System.IO.Path]::GetFullPath("$root").TrimEnd('\')
        if ($full -and ($full -eq $r -or $full.StartsWith($r + '\', [System.StringComparison]::OrdinalIgnoreCase))) { return $full }
    }
    throw [pscustomobject]@{ Code = 'PATH_NOT_ALLOWED'; Message = "$Path is not inside the $Kind folders allowed on $env:COMPUTERNAME ($(if ($roots) { $roots -join ', ' } else { 'none' })); Initialize-HvbHost.ps1 sets them (-StagingRoot, -ShareRoot, -RestoreRoot)." }
}

$notRestored = [System.Collections.Generic.List[string]]::new()
try {
    $RestorePath = Assert-HvbRoot $RestorePath 'restore'
    if (-not (Test-Path -LiteralPath $RestorePath)) { Fail 'PATH_NOT_FOUND' "$RestorePath does not exist." }
    if (@(Get-VM | Where-Object { $_.Name -eq $NewName }).Count) { Fail 'VM_EXISTS' "A VM named '$NewName' already exists on $env:COMPUTERNAME; choose another name." }
    if ($Mode -eq 'import') {
        $vmcx = Get-ChildItem -Path $RestorePath -Recurse -Filter '*.vmcx' | Where-Object { $_.DirectoryName -like '*Virtual Machines*' } | Microsoft.PowerShell.Utility\Select-Object -First 1
        if (-not $vmcx) { Fail 'EXPORT_NOT_FOUND' "No exported VM (Virtual Machines\*.vmcx) under $RestorePath." }
        if ($DryRun) {
            $result = [ordered]@{ ok = $true; dry_run = $true; planned = @("Import-VM -Copy -GenerateNewId $($vmcx.FullName)", "rename to '$NewName'") }
        } else {
            $target = Join-Path $RestorePath $NewName
            # Import-VM refuses a VM whose switch does not exist here: the compatibility report
            # (Compare-VM) says so, and its adapters are reconnected or disconnected first.
            $report = Compare-VM -Path $vmcx.FullName -Copy -GenerateNewId -VirtualMachinePath $target -VhdDestinationPath (Join-Path $target 'Virtual Hard Disks')
            $switchHere = if ($SwitchName) { Get-VMSwitch -Name $SwitchName -ErrorAction SilentlyContinue }
            if ($SwitchName -and -not $switchHere) { Fail 'SWITCH_NOT_FOUND' "No virtual switch named '$SwitchName' on $env:COMPUTERNAME (Get-VMSwitch lists them)." }
            foreach ($problem in @($report.Incompatibilities)) {
                if ([int]$problem.MessageId -ne 33012) { Fail 'VM_INCOMPATIBLE' "The export cannot be imported on ${env:COMPUTERNAME}: $($problem.Message) ($($problem.MessageId))." }
                if ($switchHere) { $problem.Source | Connect-VMNetworkAdapter -SwitchName $SwitchName }
                else {
                    $problem.Source | Disconnect-VMNetworkAdapter
                    $notRestored.Add("network adapter '$($problem.Source.Name)': $($problem.Message) It is left disconnected.")
                }
            }
            $vm = Import-VM -CompatibilityReport $report
            if ($switchHere) { Get-VMNetworkAdapter -VM $vm | Connect-VMNetworkAdapter -SwitchName $SwitchName }
            Rename-VM -VM $vm -NewName $NewName
            $result = [ordered]@{ ok = $true; vm = $NewName; vm_id = "$($vm.Id)"; mode = 'import'; state = "$((Get-VM -Id $vm.Id).State)"; not_restored = @($notRestored) }
        }
    } else {
        if (-not $ConfigurationJson -or -not $DiskJson) { Fail 'BAD_PARAMETER' '-Mode recreate needs -ConfigurationJson and -DiskJson.' }
        $config = $ConfigurationJson | ConvertFrom-Json
        $disks = @(ConvertFrom-Json -InputObject $DiskJson | ForEach-Object { $_ })  # 5.1 emits an array as one object
        foreach ($disk in $disks) {
            foreach ($file in $disk.chain) { Assert-HvbRoot $file 'restore' | Out-Null; if (-not (Test-Path -LiteralPath $file)) { Fail 'PATH_NOT_FOUND' "Restored disk file $file is missing." } }
        }
        if ($DryRun) {
            $result = [ordered]@{ ok = $true; dry_run = $true; planned = @("create generation $($config.generation) VM '$NewName' with $($config.cpu_count) CPU and $($config.memory_startup_bytes) bytes", "attach $($disks.Count) disk(s)") }
        } else {
            foreach ($disk in $disks) {
                for ($i = 0; $i -lt $disk.chain.Count - 1; $i++) {
                    Set-VHD -Path $disk.chain[$i] -ParentPath $disk.chain[$i + 1] -IgnoreIdMismatch
                }
            }
            $vm = New-VM -Name $NewName -Generation $config.generation -MemoryStartupBytes $config.memory_startup_bytes -NoVHD -Path $RestorePath
            Set-VM -VM $vm -ProcessorCount $config.cpu_count
            if ($config.dynamic_memory) { Set-VM -VM $vm -DynamicMemory -MemoryMinimumBytes $config.memory_minimum_bytes -MemoryMaximumBytes $config.memory_maximum_bytes }
            if ($config.generation -eq 2) {
                $template = "$($config.secure_boot_template)"
                if ($config.secure_boot -eq 'On' -and $template) { Set-VMFirmware -VM $vm -EnableSecureBoot On -SecureBootTemplate $template }
                else { Set-VMFirmware -VM $vm -EnableSecureBoot $config.secure_boot }
                if ($config.secure_boot -eq 'On' -and -not $template) { $notRestored.Add('Secure Boot template: not recorded by this backup; the default (MicrosoftWindows) is set, a Linux guest needs MicrosoftUEFICertificateAuthority (Set-VMFirmware -SecureBootTemplate).') }
                if ($config.tpm_enabled) {
                    Set-VMKeyProtector -VM $vm -NewLocalKeyProtector
                    Enable-VMTPM -VM $vm
                    $notRestored.Add('vTPM: enabled with a new key protector; what the original vTPM held (BitLocker keys, certificates) is not restored: the guest may ask for its BitLocker recovery key.')
                } elseif ($null -eq $config.tpm_enabled) { $notRestored.Add('vTPM: not recorded by this backup; none is enabled.') }
            }
            # A new VM has one SCSI controller (generation 2) or none (generation 1).
            $scsiNeeded = [int]$config.scsi_controllers
            foreach ($disk in $disks) { if ($disk.controller_type -eq 'SCSI' -and [int]$disk.controller_number -ge $scsiNeeded) { $scsiNeeded = [int]$disk.controller_number + 1 } }
            for ($n = @(Get-VMScsiController -VM $vm).Count; $n -lt $scsiNeeded; $n++) { Add-VMScsiController -VM $vm }
            foreach ($disk in $disks) {
                Add-VMHardDiskDrive -VM $vm -ControllerType $disk.controller_type -ControllerNumber $disk.controller_number -ControllerLocation $disk.controller_location -Path $disk.chain[0]
            }
            Get-VMNetworkAdapter -VM $vm | Remove-VMNetworkAdapter
            foreach ($nic in @($config.network_adapters)) {
                $switch = if ($SwitchName) { $SwitchName } else { $nic.switch }
                $add = @{ VM = $vm; Name = $nic.name; Passthru = $true }
                if ($switch -and (Get-VMSwitch -Name $switch -ErrorAction SilentlyContinue)) { $add.SwitchName = $switch }
                elseif ($switch) { $notRestored.Add("network adapter '$($nic.name)': no switch '$switch' on $env:COMPUTERNAME, left disconnected.") }
                if ($nic.mac -and $nic.dynamic_mac -eq $false) { $add.StaticMacAddress = $nic.mac }
                elseif ($nic.mac -and $null -eq $nic.dynamic_mac) { $notRestored.Add("network adapter '$($nic.name)': MAC address $($nic.mac) not known to be static; a new dynamic one is used.") }
                $adapter = Add-VMNetworkAdapter @add
                if ([int]$nic.vlan_id -gt 0) { Set-VMNetworkAdapterVlan -VMNetworkAdapter $adapter -Access -VlanId ([int]$nic.vlan_id) }
            }
            $result = [ordered]@{ ok = $true; vm = $NewName; vm_id = "$($vm.Id)"; mode = 'recreate'; state = "$((Get-VM -Id $vm.Id).State)"; not_restored = @($notRestored) }
        }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'VM_RESTORE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
