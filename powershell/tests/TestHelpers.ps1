# Shared by the Pester tests: stand-ins for the Hyper-V, storage and CIM cmdlets the scripts
# call, so that they can be mocked on a machine without the Hyper-V role. On a Hyper-V host the
# real cmdlets exist and are mocked directly. Nothing here touches the machine.

$HyperVCommands = @{
    'Get-VM' = 'param($Name, $Id, $ErrorAction)'
    'Set-VM' = 'param($VM, $CheckpointType, $ProcessorCount, [switch]$DynamicMemory, $MemoryMinimumBytes, $MemoryMaximumBytes)'
    'New-VM' = 'param($Name, $Generation, $MemoryStartupBytes, [switch]$NoVHD, $Path)'
    'Rename-VM' = 'param($VM, $NewName)'
    'Import-VM' = 'param($Path, [switch]$Copy, [switch]$GenerateNewId, $VirtualMachinePath, $VhdDestinationPath, $CompatibilityReport)'
    'Checkpoint-VM' = 'param($VM, $SnapshotName, [switch]$AsJob)'
    'Get-VMSnapshot' = 'param($VM, $VMName, $Name, $ErrorAction)'
    'Set-VMSnapshot' = 'param($VMSnapshot, $Notes)'
    'Remove-VMSnapshot' = 'param($VMSnapshot, [switch]$AsJob)'
    'Export-VMSnapshot' = 'param($VMSnapshot, $Path, [switch]$AsJob)'
    'Get-VMHardDiskDrive' = 'param($VM, $VMSnapshot)'
    'Add-VMHardDiskDrive' = 'param($VM, $ControllerType, $ControllerNumber, $ControllerLocation, $Path)'
    'Get-VHD' = 'param($Path)'
    'Set-VHD' = 'param($Path, $ParentPath, [switch]$IgnoreIdMismatch)'
    'Get-VMIntegrationService' = 'param($VM)'
    'Get-VMFirmware' = 'param($VM)'
    'Set-VMFirmware' = 'param($VM, $EnableSecureBoot, $SecureBootTemplate)'
    'Get-VMSecurity' = 'param($VM)'
    'Set-VMKeyProtector' = 'param($VM, [switch]$NewLocalKeyProtector)'
    'Enable-VMTPM' = 'param($VM)'
    'Get-VMScsiController' = 'param($VM)'
    'Add-VMScsiController' = 'param($VM)'
    'Compare-VM' = 'param($Path, [switch]$Copy, [switch]$GenerateNewId, $VirtualMachinePath, $VhdDestinationPath)'
    'Connect-VMNetworkAdapter' = 'param([Parameter(ValueFromPipeline)]$VMNetworkAdapter, $SwitchName)'
    'Disconnect-VMNetworkAdapter' = 'param([Parameter(ValueFromPipeline)]$VMNetworkAdapter)'
    'Set-VMNetworkAdapterVlan' = 'param($VMNetworkAdapter, [switch]$Access, $VlanId)'
    'Get-VMNetworkAdapter' = 'param($VM)'
    'Add-VMNetworkAdapter' = 'param($VM, $Name, $SwitchName, $StaticMacAddress, [switch]$Passthru)'
    'Remove-VMNetworkAdapter' = 'param([Parameter(ValueFromPipeline)]$VMNetworkAdapter)'
    'Get-VMNetworkAdapterVlan' = 'param($VMNetworkAdapter)'
    'Get-VMSwitch' = 'param($Name, $ErrorAction)'
}
foreach ($name in $HyperVCommands.Keys) {
    if (-not (Get-Command $name -ErrorAction SilentlyContinue)) {
        Set-Item -Path "function:global:$name" -Value ([scriptblock]::Create($HyperVCommands[$name]))
    }
}
if (-not $env:ProgramData) { $env:ProgramData = Join-Path ([System.IO.Path]::GetTempPath()) 'ProgramData' }

function Set-HvbTestRoots([hashtable]$Roots) {
    # The roots.json Initialize-HvbHost.ps1 writes, mocked: the tests never touch the real one.
    $json = $Roots | ConvertTo-Json -Compress
    Mock Test-Path { $true } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
    Mock Get-Content { $json } -ParameterFilter { $LiteralPath -like '*hvbackup\roots.json' }
}

function New-FakeVm([string]$Name = 'ERP01') {
    [pscustomobject]@{
        Id = [guid]'11111111-2222-3333-4444-555555555555'; Name = $Name; State = 'Running'
        Generation = 2; Version = '10.0'; ProcessorCount = 4; MemoryStartup = 8GB
        MemoryMinimum = 8GB; MemoryMaximum = 8GB; DynamicMemoryEnabled = $false
        CheckpointType = 'Production'; ConfigurationLocation = "D:\Hyper-V\$Name"
    }
}

function New-FakeJob {
    # A finished job, as Checkpoint-VM -AsJob and friends return.
    Start-Job -ScriptBlock { 'done' }
}

function Invoke-Script([string]$Name, [hashtable]$Parameters) {
    $path = Join-Path (Split-Path $PSScriptRoot) "$Name.ps1"
    & $path @Parameters | ConvertFrom-Json
}
