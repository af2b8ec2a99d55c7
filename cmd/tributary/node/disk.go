package node

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
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

// DiskReserveEnv sets the free-space reserve of every process on a home
// (bytes, or with a unit: 512MiB, 2GiB; 0 turns the check off).
const DiskReserveEnv = "TRIBUTARY_DISK_RESERVE"

// ParseSize reads a byte count: a number with an optional unit B, KiB,
// MiB, GiB (or KB, MB, GB as powers of 1000).
func ParseSize(s string) (uint64, error) {
	t := strings.TrimSpace(s)
	units := []struct {
		suffix string
		mult   uint64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"B", 1}}
	mult := uint64(1)
	for _, u := range units {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.mult
			break
		}
	}
	n, err := strconv.ParseUint(t, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: want a number of bytes, optionally with a unit (512MiB, 2GiB)", s)
	}
	return n * mult, nil
}
