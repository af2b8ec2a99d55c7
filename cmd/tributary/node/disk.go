package node

import (
	"errors"
	"fmt"
	"syscall"
)

// ErrDiskFull: the home's filesystem is below its free-space reserve;
// writes are refused until space returns (reads keep working).
var ErrDiskFull = errors.New("disk almost full")

// DefaultDiskReserve is the free space a home keeps: room for Badger to
// flush a memtable and compact, so a full disk refuses writes cleanly
// instead of killing the process in a memory-mapped write.
const DefaultDiskReserve = 128 << 20

// FreeBytes reports the bytes available to this user on dir's filesystem.
func FreeBytes(dir string) (uint64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("free space of %s: %w", dir, err)
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// DiskGuard returns a write guard (replica.Options.WriteGuard) refusing
// writes while fewer than reserve bytes are free under dir. free measures
// the free bytes (FreeBytes in production; tests drive it).
func DiskGuard(dir string, reserve uint64, free func(string) (uint64, error)) func() error {
	if free == nil {
		free = FreeBytes
	}
	return func() error {
		if reserve == 0 {
			return nil
		}
		n, err := free(dir)
		if err != nil {
			return err
		}
		if n < reserve {
			return fmt.Errorf("%w: %d MiB free under %s, the node keeps %d MiB in reserve; writes resume when space is freed", ErrDiskFull, n>>20, dir, reserve>>20)
		}
		return nil
	}
}
