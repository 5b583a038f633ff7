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
    Each chain is re-linked (Set-VHD -ParentPath), then a new VM is created and the disks
    attached at their original controller locations.
    An existing VM with the target name is never touched: the script stops with VM_EXISTS.

    Writes exactly one JSON object. -DryRun reports what would be done and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$RestorePath,
    [Parameter(Mandatory)][string]$NewName,
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

try {
    if (-not (Test-Path -LiteralPath $RestorePath)) { Fail 'PATH_NOT_FOUND' "$RestorePath does not exist." }
    if (@(Get-VM -Name $NewName -ErrorAction SilentlyContinue).Count) { Fail 'VM_EXISTS' "A VM named '$NewName' already exists on $env:COMPUTERNAME; choose another name." }
    if ($Mode -eq 'import') {
        $vmcx = Get-ChildItem -Path $RestorePath -Recurse -Filter '*.vmcx' | Where-Object { $_.DirectoryName -like '*Virtual Machines*' } | Microsoft.PowerShell.Utility\Select-Object -First 1
        if (-not $vmcx) { Fail 'EXPORT_NOT_FOUND' "No exported VM (Virtual Machines\*.vmcx) under $RestorePath." }
        if ($DryRun) {
            $result = [ordered]@{ ok = $true; dry_run = $true; planned = @("Import-VM -Copy -GenerateNewId $($vmcx.FullName)", "rename to '$NewName'") }
        } else {
            $target = Join-Path $RestorePath $NewName
            $vm = Import-VM -Path $vmcx.FullName -Copy -GenerateNewId -VirtualMachinePath $target -VhdDestinationPath (Join-Path $target 'Virtual Hard Disks')
            Rename-VM -VM $vm -NewName $NewName
            $result = [ordered]@{ ok = $true; vm = $NewName; vm_id = "$($vm.Id)"; mode = 'import'; state = "$((Get-VM -Id $vm.Id).State)" }
        }
    } else {
        if (-not $ConfigurationJson -or -not $DiskJson) { Fail 'BAD_PARAMETER' '-Mode recreate needs -ConfigurationJson and -DiskJson.' }
        $config = $ConfigurationJson | ConvertFrom-Json
        $disks = @(ConvertFrom-Json -InputObject $DiskJson | ForEach-Object { $_ })  # 5.1 emits an array as one object
        foreach ($disk in $disks) {
            foreach ($file in $disk.chain) { if (-not (Test-Path -LiteralPath $file)) { Fail 'PATH_NOT_FOUND' "Restored disk file $file is missing." } }
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
            if ($config.generation -eq 2) { Set-VMFirmware -VM $vm -EnableSecureBoot $config.secure_boot }
            foreach ($disk in $disks) {
                Add-VMHardDiskDrive -VM $vm -ControllerType $disk.controller_type -ControllerNumber $disk.controller_number -ControllerLocation $disk.controller_location -Path $disk.chain[0]
            }
            Get-VMNetworkAdapter -VM $vm | Remove-VMNetworkAdapter
            foreach ($nic in @($config.network_adapters)) {
                $switch = if ($SwitchName) { $SwitchName } else { $nic.switch }
                if ($switch -and (Get-VMSwitch -Name $switch -ErrorAction SilentlyContinue)) {
                    Add-VMNetworkAdapter -VM $vm -Name $nic.name -SwitchName $switch
                } else {
                    Add-VMNetworkAdapter -VM $vm -Name $nic.name
                }
            }
            $result = [ordered]@{ ok = $true; vm = $NewName; vm_id = "$($vm.Id)"; mode = 'recreate'; state = "$((Get-VM -Id $vm.Id).State)" }
        }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'VM_RESTORE_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
}
$result | ConvertTo-Json -Compress -Depth 8
