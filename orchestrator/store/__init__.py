"""The backup repository: chunks, packs, index, snapshots, keys, restore and verify."""
