<#
.SYNOPSIS
    Takes the backup checkpoint of one VM and reports the frozen disk files to read.

.DESCRIPTION
    What it does to the host:
      1. switches the VM to ProductionOnly checkpoints for the duration of the call (the VM's
         own setting is put back in every case), so that a guest VSS failure is an error and
         never a silent crash-consistent checkpoint;
      2. creates a checkpoint named "<Prefix>-<RunId>" (running it again with the same RunId
         returns the existing checkpoint: idempotent);
      3. only if -AllowCrashConsistent was given and guest VSS failed: takes a standard
         checkpoint instead, named "<Prefix>-<RunId> (crash-consistent)" (Hyper-V has no
         cmdlet that writes a checkpoint's notes: the name is where the consistency stays),
         and reports consistency "crash";
      4. with -Mode export: exports the checkpoint to <StagingPath>\<RunId> (Export-VMSnapshot)
         and shares that folder as the hidden hvb-<RunId>-vm$, read for the connected account
         only ($PSSenderInfo.ConnectedUser), no offline caching, with a read ACE on the folder:
         files[].exposed is where the orchestrator reads each file (\\<COMPUTERNAME>\hvb-...$\...),
         files[].path its local name. Remove-HvbStaging.ps1 removes share and folder.
    Through the JEA endpoint only -Mode export is accepted (CHECKPOINT_MODE_REFUSED): the frozen
    chain of checkpoint mode stays in the VM's own folder, which the onboarded account cannot
    read, and hvbackup does not change production disks' ACLs (docs/lab/shares.md).
    Pass-through disks (physical disks, no file) are not in a checkpoint: they are listed in
    "passthrough_disks" and not read. The VM is found by its exact name (Get-VM -Name would
    read *?[] as wildcards).
    While the checkpoint exists the VM writes to new .avhdx files and the files listed in
    "disks[].chain" do not change: they are what the backup reads. The checkpoint is removed by
    Remove-HvbCheckpoint.ps1, which the orchestrator calls in every case.

    Writes exactly one JSON object. -DryRun reports what would be done and changes nothing.
#>
[CmdletBinding()]
param(
    [Parameter(Mandatory)][string]$VMName,
    [Parameter(Mandatory)][ValidatePattern('^[A-Za-z0-9-]+$')][string]$RunId,
    [ValidatePattern('^[A-Za-z0-9]+$')][string]$Prefix = 'hvbackup',
    [switch]$AllowCrashConsistent,
    [ValidateSet('checkpoint', 'export')][string]$Mode = 'checkpoint',
    [string]$StagingPath,
    [int]$TimeoutSeconds = 1800,
    [switch]$DryRun
)

$ErrorActionPreference = 'Stop'
$ProgressPreference = 'SilentlyContinue'

function Fail([string]$Code, [string]$Message) {
    throw [pscustomobject]@{ Code = $Code; Message = $Message }
}

function Wait-HvbJob($Job, [string]$What) {
    # Waits on the job object, never on localized status text.
    $finished = Wait-Job -Job $Job -Timeout $TimeoutSeconds
    if (-not $finished) {
        Stop-Job -Job $Job
        Remove-Job -Job $Job -Force
        Fail 'TIMEOUT' "$What did not finish within $TimeoutSeconds s."
    }
    try { return Receive-Job -Job $Job -Wait -ErrorAction Stop } finally { Remove-Job -Job $Job -Force }
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

function Get-DiskChain([string]$Path) {
    # The file itself, then each parent up to the base disk.
    $chain = @()
    $current = $Path
    while ($current) {
        $chain += $current
        $vhd = Get-VHD -Path $current
        $current = $vhd.ParentPath
        if ($chain.Count -gt 64) { throw [pscustomobject]@{ Code = 'DISK_CHAIN_LOOP'; Message = "The parent chain of $Path does not end." } }
    }
    return , $chain
}

function Get-VmConfiguration($Vm) {
    # What Restore-HvbVm.ps1 needs to recreate the VM from its restored disks.
    [ordered]@{
        name                 = $Vm.Name
        id                   = "$($Vm.Id)"
        generation           = [int]$Vm.Generation
        version              = "$($Vm.Version)"
        cpu_count            = [int]$Vm.ProcessorCount
        memory_startup_bytes = [int64]$Vm.MemoryStartup
        dynamic_memory       = [bool]$Vm.DynamicMemoryEnabled
        memory_minimum_bytes = [int64]$Vm.MemoryMinimum
        memory_maximum_bytes = [int64]$Vm.MemoryMaximum
        secure_boot          = if ($Vm.Generation -eq 2) { "$((Get-VMFirmware -VM $Vm).SecureBoot)" } else { 'Off' }
        secure_boot_template = if ($Vm.Generation -eq 2) { "$((Get-VMFirmware -VM $Vm).SecureBootTemplate)" } else { '' }
        tpm_enabled          = ($Vm.Generation -eq 2) -and [bool](Get-VMSecurity -VM $Vm).TpmEnabled
        scsi_controllers     = @(Get-VMScsiController -VM $Vm).Count
        network_adapters     = @(Get-VMNetworkAdapter -VM $Vm | ForEach-Object {
                # VLAN modes are exclusive (Set-VMNetworkAdapterVlan): Untagged, Access, Trunk,
                # Private (Isolated, Community or Promiscuous); each with its own IDs.
                $vlan = Get-VMNetworkAdapterVlan -VMNetworkAdapter $_
                [ordered]@{ name = $_.Name; switch = "$($_.SwitchName)"; mac = "$($_.MacAddress)"; dynamic_mac = [bool]$_.DynamicMacAddressEnabled; vlan_id = [int]$vlan.AccessVlanId
                    vlan_mode = "$($vlan.OperationMode)"; native_vlan_id = [int]$vlan.NativeVlanId; allowed_vlan_ids = "$($vlan.AllowedVlanIdListString)"
                    private_vlan_mode = "$($vlan.PrivateVlanMode)"; primary_vlan_id = [int]$vlan.PrimaryVlanId; secondary_vlan_id = [int]$vlan.SecondaryVlanId; secondary_vlan_ids = "$($vlan.SecondaryVlanIdListString)" }
            })
        dvd_drives           = @(Get-VMDvdDrive -VM $Vm | ForEach-Object { [ordered]@{ controller_type = "$($_.ControllerType)"; controller_number = [int]$_.ControllerNumber; controller_location = [int]$_.ControllerLocation; path = "$($_.Path)" } })
        # Generation 2: the firmware's boot entries, each named by the device it starts from
        # (the devices of a recreated VM are new objects); generation 1: the BIOS order.
        boot_order           = if ($Vm.Generation -eq 2) { @((Get-VMFirmware -VM $Vm).BootOrder | ForEach-Object { Get-HvbBootEntry $_ }) } else { @((Get-VMBios -VM $Vm).StartupOrder | ForEach-Object { [ordered]@{ kind = 'bios'; device = "$_" } }) }
        automatic_start_action = "$($Vm.AutomaticStartAction)"
        automatic_start_delay  = [int]$Vm.AutomaticStartDelay
        automatic_stop_action  = "$($Vm.AutomaticStopAction)"
    }
}

function Get-HvbBootEntry($Entry) {
    $device = $Entry.Device
    if ($device -is [Microsoft.HyperV.PowerShell.HardDiskDrive] -or $device -is [Microsoft.HyperV.PowerShell.DvdDrive]) {
        $kind = if ($device -is [Microsoft.HyperV.PowerShell.DvdDrive]) { 'dvd' } else { 'disk' }
        return [ordered]@{ kind = $kind; controller_type = "$($device.ControllerType)"; controller_number = [int]$device.ControllerNumber; controller_location = [int]$device.ControllerLocation; description = "$($Entry.Description)" }
    }
    if ($device -is [Microsoft.HyperV.PowerShell.VMNetworkAdapter]) { return [ordered]@{ kind = 'network'; adapter = "$($device.Name)"; description = "$($Entry.Description)" } }
    # A file entry (an OS loader such as "Windows Boot Manager"): the guest writes it again.
    [ordered]@{ kind = 'file'; path = "$($Entry.FirmwarePath)"; description = "$($Entry.Description)" }
}

function Test-PassThrough($Drive) {
    # A pass-through disk has a DiskNumber, and a Path that describes the physical disk
    # ("Disk 2 30.00 GB Bus 0 Lun 1 Target 0"): Get-VHD cannot open it.
    return ($null -ne $Drive.DiskNumber) -or ("$($Drive.Path)" -notmatch '\.a?vhdx?$')
}

function Get-FrozenDisks($Checkpoint) {
    foreach ($drive in @(Get-VMHardDiskDrive -VMSnapshot $Checkpoint)) {
        if (-not $drive.Path -or (Test-PassThrough $drive)) { continue }
        [ordered]@{
            controller_type     = "$($drive.ControllerType)"
            controller_number   = [int]$drive.ControllerNumber
            controller_location = [int]$drive.ControllerLocation
            path                = $drive.Path
            chain               = Get-DiskChain $drive.Path
            size_bytes          = [int64](Get-VHD -Path $drive.Path).Size
        }
    }
}

function Get-StagingVolume([string]$Path) {
    # The volume that holds $Path: the longest volume root (drive letter or mount point) that
    # starts it (a folder on a volume mounted at D:\Mounts\Staging\ is on that volume, which
    # has no drive letter of its own). A share (\\server\share) is refused: the host writes as
    # its computer account there, and no volume of this host says how much room it has.
    if ($Path -like '\\*') { throw [pscustomobject]@{ Code = 'BAD_PARAMETER'; Message = "Staging $Path is a network share; give a folder on a local volume of $env:COMPUTERNAME." } }
    $full = [System.IO.Path]::GetFullPath($Path).TrimEnd('\') + '\'
    $volume = @(Get-CimInstance -ClassName Win32_Volume | Where-Object { $_.Name -and $full.StartsWith($_.Name, [System.StringComparison]::OrdinalIgnoreCase) } | Sort-Object { $_.Name.Length } -Descending) | Microsoft.PowerShell.Utility\Select-Object -First 1
    if (-not $volume) { throw [pscustomobject]@{ Code = 'PATH_NOT_FOUND'; Message = "No volume of $env:COMPUTERNAME holds $Path." } }
    return $volume
}

function Publish-HvbRunShare([string]$Folder, [string]$Name) {
    # The orchestrator reads this run's files as the account connected through WinRM, which is
    # no administrator (no D$): a hidden share of the run folder, read for that account only,
    # no offline caching; and a read ACE on the folder itself, since a share's ACL alone opens
    # nothing NTFS refuses. Idempotent: the same share of the same folder is kept.
    $reader = if ($PSSenderInfo -and $PSSenderInfo.ConnectedUser) { $PSSenderInfo.ConnectedUser } else { "$env:USERDOMAIN\$env:USERNAME" }
    try {
        $folderInfo = New-Object System.IO.DirectoryInfo $Folder
        $acl = $folderInfo.GetAccessControl([System.Security.AccessControl.AccessControlSections]::Access)
        $acl.AddAccessRule((New-Object System.Security.AccessControl.FileSystemAccessRule($reader, 'ReadAndExecute', 'ContainerInherit, ObjectInherit', 'None', 'Allow')))
        $folderInfo.SetAccessControl($acl)
        $current = Get-SmbShare -Name $Name -ErrorAction SilentlyContinue
        if ($current -and $current.Path.TrimEnd('\') -ne $Folder.TrimEnd('\')) { Remove-SmbShare -Name $Name -Force }
        if (-not $current -or $current.Path.TrimEnd('\') -ne $Folder.TrimEnd('\')) {
            New-SmbShare -Name $Name -Path $Folder -ReadAccess $reader -CachingMode None -FolderEnumerationMode AccessBased -Description "hvbackup run folder" | Out-Null
        }
    } catch { throw [pscustomobject]@{ Code = 'SHARE_FAILED'; Message = "Cannot share $Folder as $Name to ${reader}: $($_.Exception.Message)" } }
    return "\\$env:COMPUTERNAME\$Name"
}

$VssIntegrationId = '5CED1297-4598-4915-A5FC-AD21BB4D02A4'
$vm = $null
$originalType = $null
try {
    $found = @(Get-VM | Where-Object { $_.Name -eq $VMName })
    if ($found.Count -eq 0) { Fail 'VM_NOT_FOUND' "No VM named '$VMName' on $env:COMPUTERNAME." }
    if ($found.Count -gt 1) { Fail 'VM_AMBIGUOUS' "$($found.Count) VMs are named '$VMName' on $env:COMPUTERNAME; rename one." }
    $vm = $found[0]
    $name = "$Prefix-$RunId"
    if ($Mode -eq 'export' -and -not $StagingPath) { Fail 'BAD_PARAMETER' '-Mode export needs -StagingPath.' }
    if ($Mode -eq 'export') { Assert-HvbRoot $StagingPath 'staging' | Out-Null }
    elseif ($PSSenderInfo -and "$($PSSenderInfo.ConfigurationName)" -notlike 'Microsoft.*') {
        # Through the JEA endpoint the files are read as the onboarded account, which the VM's
        # own folder (NTFS: SYSTEM, Administrators, the VM's virtual account) gives nothing;
        # hvbackup never changes production disks' ACLs (docs/lab/shares.md).
        Fail 'CHECKPOINT_MODE_REFUSED' "Checkpoint mode reads the frozen disks in ${VMName}'s own folder, which the hvbackup account (no administrator, through the JEA endpoint) cannot read on $env:COMPUTERNAME, and hvbackup does not change the permissions of production disks: set mode: export on this job (docs/lab/shares.md)."
    }

    $crashName = "$name (crash-consistent)"
    $existing = Get-VMSnapshot -VM $vm | Where-Object { $_.Name -eq $name -or $_.Name -eq $crashName } | Microsoft.PowerShell.Utility\Select-Object -First 1
    if ($DryRun) {
        $result = [ordered]@{
            ok = $true; dry_run = $true; vm = $vm.Name; checkpoint_name = $name
            planned = @(
                "set CheckpointType ProductionOnly (now $($vm.CheckpointType)), then put it back",
                $(if ($existing) { "reuse existing checkpoint '$name'" } else { "create checkpoint '$name'" }),
                $(if ($AllowCrashConsistent) { 'if guest VSS fails: standard checkpoint, reported crash-consistent' } else { 'if guest VSS fails: stop with GUEST_VSS_FAILED' }),
                $(if ($Mode -eq 'export') { "export the checkpoint to $StagingPath\$RunId" } else { 'report the frozen disk chain' })
            )
        }
    } else {
        $consistency = 'application'
        $vssError = $null
        if ($existing) {
            $checkpoint = $existing
            $consistency = if ($existing.Name -eq $crashName) { 'crash' } else { 'application' }
        } else {
            $originalType = "$($vm.CheckpointType)"
            Set-VM -VM $vm -CheckpointType ProductionOnly
            try {
                Wait-HvbJob (Checkpoint-VM -VM $vm -SnapshotName $name -AsJob) "The production checkpoint of $VMName" | Out-Null
            } catch {
                if ($_.TargetObject.Code -eq 'TIMEOUT') { throw }
                $vssError = if ($_.TargetObject.Message) { $_.TargetObject.Message } else { $_.Exception.Message }
                # Guest VSS is the cause only when the VM runs and its backup integration
                # service (matched by ID) is not healthy; anything else (disk full, a VM
                # state, the host) is a checkpoint failure, with another hint and no retry.
                $vss = Get-VMIntegrationService -VM $vm | Where-Object { $_.Id -like "*$VssIntegrationId" } | Microsoft.PowerShell.Utility\Select-Object -First 1
                $guestVss = "$($vm.State)" -eq 'Running' -and -not ($vss -and $vss.Enabled -and "$($vss.PrimaryOperationalStatus)" -eq 'Ok')
                if (-not $guestVss) { Fail 'CHECKPOINT_FAILED' "The checkpoint of $VMName failed: $vssError" }
                if (-not $AllowCrashConsistent) {
                    Fail 'GUEST_VSS_FAILED' "The application-consistent checkpoint of $VMName failed (guest VSS): $vssError"
                }
                Set-VM -VM $vm -CheckpointType Standard
                Wait-HvbJob (Checkpoint-VM -VM $vm -SnapshotName $crashName -AsJob) "The standard checkpoint of $VMName" | Out-Null
                $consistency = 'crash'
            }
            $taken = if ($consistency -eq 'crash') { $crashName } else { $name }
            $checkpoint = Get-VMSnapshot -VM $vm | Where-Object { $_.Name -eq $taken } | Microsoft.PowerShell.Utility\Select-Object -First 1
        }
        $result = [ordered]@{
            ok              = $true
            vm              = $vm.Name
            vm_id           = "$($vm.Id)"
            checkpoint_id   = "$($checkpoint.Id)"
            checkpoint_name = "$($checkpoint.Name)"
            consistency     = $consistency
            vss_error       = $vssError
            reused          = [bool]$existing
            disks           = @(Get-FrozenDisks $checkpoint)
            passthrough_disks = @(Get-VMHardDiskDrive -VMSnapshot $checkpoint | Where-Object { Test-PassThrough $_ } | ForEach-Object { "$($_.ControllerType) $($_.ControllerNumber):$($_.ControllerLocation) $($_.Path)" })
            configuration   = Get-VmConfiguration $vm
            export_path     = $null
            files           = @()
            share           = $null
        }
        if ($Mode -eq 'export') {
            $target = Join-Path $StagingPath $RunId
            # The export holds every file of each chain, not only its top.
            [int64]$needed = 0
            foreach ($disk in $result.disks) { foreach ($file in $disk.chain) { $needed += [int64](Get-VHD -Path $file).FileSize } }
            $drive = Get-StagingVolume $StagingPath
            if ($drive.FreeSpace -lt $needed) {
                Fail 'STAGING_FULL' "The volume $($drive.Name) of $StagingPath has $([int64]$drive.FreeSpace) bytes free; the export needs about $needed."
            }
            New-Item -ItemType Directory -Force -Path $target | Out-Null
            Wait-HvbJob (Export-VMSnapshot -VMSnapshot $checkpoint -Path $target -AsJob) "The export of $VMName" | Out-Null
            $share = "hvb-$RunId-vm`$"
            $unc = Publish-HvbRunShare $target $share
            $result.export_path = $target
            $result.share = $share
            $prefix = [System.IO.Path]::GetFullPath($target).TrimEnd('\').Length
            $result.files = @(Get-ChildItem -Path $target -Recurse -File | ForEach-Object { [ordered]@{ path = $_.FullName; size_bytes = [int64]$_.Length; exposed = $unc + $_.FullName.Substring($prefix) } })
        }
    }
} catch {
    $detail = $_.TargetObject
    $code = if ($detail.Code) { $detail.Code } else { 'CHECKPOINT_FAILED' }
    $message = if ($detail.Message) { $detail.Message } else { $_.Exception.Message }
    $result = [ordered]@{ ok = $false; error = [ordered]@{ code = $code; message = $message } }
} finally {
    if ($vm -and $originalType) {
        # Put the technician's setting back whatever happened.
        try { Set-VM -VM $vm -CheckpointType $originalType } catch { Write-Warning "Could not restore CheckpointType $originalType on ${VMName}: $($_.Exception.Message)" }
    }
}
$result | ConvertTo-Json -Compress -Depth 8
