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
    controllers, Secure Boot template, vTPM, static MAC addresses and VLAN settings it had
    (access, trunk, private: isolated, community, promiscuous), the disks and DVD drives
    attached at their original controller locations (an ISO that is not on this host leaves
    its drive empty), the boot order (firmware entries by the device they start from; BIOS
    order on generation 1) and the automatic actions, except a start action Start (both modes): a
    copy that started with the host would run beside the original; it is set to Nothing and
    said. A static MAC that another VM of this host already has is said too
    (both modes): the two must not run on one network.
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

function Add-HvbDuplicateMac($Vm) {
    # A static MAC kept on purpose (the guest's licences, DHCP reservations) is also the
    # original's: said when a VM of this host has it, so that both never run on one network.
    $others = @(Get-VM | Where-Object { $_.Id -ne $Vm.Id } | ForEach-Object { $o = $_; Get-VMNetworkAdapter -VM $o | ForEach-Object { [pscustomobject]@{ Vm = $o.Name; Mac = "$($_.MacAddress)" } } })
    foreach ($nic in @(Get-VMNetworkAdapter -VM $Vm | Where-Object { -not $_.DynamicMacAddressEnabled })) {
        $same = @($others | Where-Object { $_.Mac -eq "$($nic.MacAddress)" } | ForEach-Object { $_.Vm } | Sort-Object -Unique)
        if ($same.Count) { $notRestored.Add("network adapter '$($nic.Name)': its static MAC address $($nic.MacAddress) is also that of VM $($same -join ', ') on ${env:COMPUTERNAME}: never run both on the same network, or give this one a new address (Set-VMNetworkAdapter -DynamicMacAddress).") }
    }
}

function Set-HvbNoAutomaticStart($Vm) {
    Set-VM -VM $Vm -AutomaticStartAction Nothing
    $notRestored.Add("automatic start action: it was Start; the copy is set to Nothing so that it never starts with the host beside the original (Set-VM -AutomaticStartAction Start once it replaces it).")
}

function Set-HvbVlan($Adapter, $Nic) {
    $mode = "$($Nic.vlan_mode)"
    if (-not $mode) { $mode = if ([int]$Nic.vlan_id -gt 0) { 'Access' } else { 'Untagged' } }  # recorded before the modes
    switch ($mode) {
        'Untagged' { return }
        'Access' { Set-VMNetworkAdapterVlan -VMNetworkAdapter $Adapter -Access -VlanId ([int]$Nic.vlan_id); return }
        'Trunk' { Set-VMNetworkAdapterVlan -VMNetworkAdapter $Adapter -Trunk -AllowedVlanIdList "$($Nic.allowed_vlan_ids)" -NativeVlanId ([int]$Nic.native_vlan_id); return }
        'Private' {
            switch ("$($Nic.private_vlan_mode)") {
                'Isolated' { Set-VMNetworkAdapterVlan -VMNetworkAdapter $Adapter -Isolated -PrimaryVlanId ([int]$Nic.primary_vlan_id) -SecondaryVlanId ([int]$Nic.secondary_vlan_id); return }
                'Community' { Set-VMNetworkAdapterVlan -VMNetworkAdapter $Adapter -Community -PrimaryVlanId ([int]$Nic.primary_vlan_id) -SecondaryVlanId ([int]$Nic.secondary_vlan_id); return }
                'Promiscuous' { Set-VMNetworkAdapterVlan -VMNetworkAdapter $Adapter -Promiscuous -PrimaryVlanId ([int]$Nic.primary_vlan_id) -SecondaryVlanIdList "$($Nic.secondary_vlan_ids)"; return }
            }
        }
    }
    $notRestored.Add("network adapter '$($Nic.name)': VLAN mode '$mode' $($Nic.private_vlan_mode) not known to this script; the adapter is untagged (Set-VMNetworkAdapterVlan).")
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
            if ("$($vm.AutomaticStartAction)" -eq 'Start') { Set-HvbNoAutomaticStart $vm }
            Add-HvbDuplicateMac $vm
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
            if ($null -eq $config.dvd_drives) { $notRestored.Add('DVD drives: not recorded by this backup; none is added.') }
            foreach ($dvd in @($config.dvd_drives)) {
                $drive = @{ VM = $vm; ControllerNumber = [int]$dvd.controller_number; ControllerLocation = [int]$dvd.controller_location; Passthru = $true }
                if ($config.generation -eq 1) { $drive.ControllerType = 'IDE' }  # generation 2 DVD drives are SCSI only
                $iso = "$($dvd.path)"
                if ($iso -and (Test-Path -LiteralPath $iso -PathType Leaf)) { $drive.Path = $iso }
                elseif ($iso) { $notRestored.Add("DVD drive $($dvd.controller_type) $($dvd.controller_number):$($dvd.controller_location): the ISO $iso is not on $env:COMPUTERNAME; the drive is left empty (Set-VMDvdDrive -Path).") }
                Add-VMDvdDrive @drive | Out-Null
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
                Set-HvbVlan $adapter $nic
            }
            Add-HvbDuplicateMac $vm
            # The boot order, by device: the devices of this VM are new objects.
            $order = @($config.boot_order)
            if ($null -eq $config.boot_order) { $notRestored.Add('boot order: not recorded by this backup; Hyper-V''s default order is kept.') }
            elseif ($config.generation -eq 2) {
                $entries = @((Get-VMFirmware -VM $vm).BootOrder)
                $wanted = foreach ($want in $order) {
                    $found = $entries | Where-Object {
                        $d = $_.Device
                        ($want.kind -in @('disk', 'dvd') -and $d -and "$($d.ControllerType)" -eq $want.controller_type -and [int]$d.ControllerNumber -eq [int]$want.controller_number -and [int]$d.ControllerLocation -eq [int]$want.controller_location) -or
                        ($want.kind -eq 'network' -and $d -is [Microsoft.HyperV.PowerShell.VMNetworkAdapter] -and $d.Name -eq $want.adapter) } | Microsoft.PowerShell.Utility\Select-Object -First 1
                    if ($found) { $found }
                    elseif ($want.kind -eq 'file') { $notRestored.Add("boot entry '$($want.description)' ($($want.path)): a loader entry the guest's own boot manager writes; it comes back at the first start, after the disks.") }
                    else { $notRestored.Add("boot entry '$($want.description)': its device is not on the new VM; left out of the boot order.") }
                }
                $wanted = @($wanted)
                if ($wanted.Count) { Set-VMFirmware -VM $vm -BootOrder (@($wanted) + @($entries | Where-Object { $wanted -notcontains $_ })) }
            } else {
                $bios = @($order | ForEach-Object { "$($_.device)" } | Where-Object { $_ })
                if ($bios.Count) { Set-VMBios -VM $vm -StartupOrder $bios }
            }
            if ($null -eq $config.automatic_start_action) { $notRestored.Add('automatic start and stop actions: not recorded by this backup; Hyper-V''s defaults are kept.') }
            else {
                Set-VM -VM $vm -AutomaticStopAction $config.automatic_stop_action -AutomaticStartDelay ([int]$config.automatic_start_delay)
                # StartIfRunning and Nothing leave a copy that is off alone; Start would boot it
                # with the host, beside the original.
                if ("$($config.automatic_start_action)" -ne 'Start') { Set-VM -VM $vm -AutomaticStartAction $config.automatic_start_action }
                else { Set-HvbNoAutomaticStart $vm }
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
