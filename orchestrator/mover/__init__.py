"""Reading what a capture exposes (frozen disks, .bak files, shadow-copy folders), streaming."""
