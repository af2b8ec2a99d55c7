package bench

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"
	"syscall"
	"time"
)

// settle is how long an idle node runs before its memory is read.
const settle = 2 * time.Second

// runRSS: the peak resident set (VmHWM) of a node holding n documents:
// while `tributary load` writes them through it, restarted and idle, and
// restarted with a postgres sink that backfills them all; beside each,
// the same node holding none. And the home's size on disk beside the
// NDJSON it was loaded from.
func runRSS(ctx context.Context, t *trial) error {
	n := t.h.cfg.RSSDocs
	empty, emptySpace, err := t.single(ctx, "E")
	if err != nil {
		return err
	}
	idle0, err := t.idleMemory(ctx, empty, "E", "")
	if err != nil {
		return err
	}
	url0, err := t.database(ctx)
	if err != nil {
		return err
	}
	cfg0, err := t.sinkConfig("E", emptySpace, url0)
	if err != nil {
		return err
	}
	sink0, err := t.idleMemory(ctx, empty, "E", cfg0)
	if err != nil {
		return err
	}

	home, space, err := t.single(ctx, "A")
	if err != nil {
		return err
	}
	file, size, err := t.items("m", n)
	if err != nil {
		return err
	}
	an, err := t.startNode(ctx, home, "A", nodeOptions{})
	if err != nil {
		return err
	}
	if err := t.measure(); err != nil {
		return err
	}
	if _, _, err := t.load(ctx, home, space, file, n); err != nil {
		return err
	}
	loading, err := an.Memory()
	if err != nil {
		return err
	}
	if err := t.stopNode(an); err != nil {
		return err
	}
	idle, err := t.idleMemory(ctx, home, "A", "")
	if err != nil {
		return err
	}
	url, err := t.database(ctx)
	if err != nil {
		return err
	}
	cfg, err := t.sinkConfig("A", space, url)
	if err != nil {
		return err
	}
	an, err = t.startNode(ctx, home, "A", nodeOptions{config: cfg})
	if err != nil {
		return err
	}
	if _, err := t.waitRows(ctx, url, n, "A's PostgreSQL"); err != nil {
		return err
	}
	sinking, err := an.Memory()
	if err != nil {
		return err
	}
	if err := t.stopNode(an); err != nil {
		return err
	}
	disk, err := dirSize(home)
	if err != nil {
		return err
	}
	cs := fmt.Sprintf("n=%d", n)
	emptyNode := &Baseline{What: "VmHWM of the same node holding no document", Value: mibOf(idle0.HWM)}
	t.add(Result{Case: cs, Metric: "peak RSS, loading through the node", Unit: "MiB", Value: mibOf(loading.HWM)}, emptyNode)
	t.add(Result{Case: cs, Metric: "peak RSS, restarted, idle", Unit: "MiB", Value: mibOf(idle.HWM)}, emptyNode)
	t.add(Result{Case: cs, Metric: "peak RSS, restarted, postgres sink backfilled", Unit: "MiB", Value: mibOf(sinking.HWM)},
		&Baseline{What: "VmHWM of the node holding no document, with the sink", Value: mibOf(sink0.HWM)})
	t.add(Result{Case: cs, Metric: "home on disk", Unit: "MiB", Value: mibOf(disk)},
		&Baseline{What: "the NDJSON loaded", Value: mibOf(size)})
	return nil
}

// idleMemory starts a node on home, lets it settle (with a sink: until
// the sink runs), reads its memory and stops it.
func (t *trial) idleMemory(ctx context.Context, home, name, cfg string) (Memory, error) {
	n, err := t.startNode(ctx, home, name, nodeOptions{config: cfg})
	if err != nil {
		return Memory{}, err
	}
	if cfg != "" {
		if err := waitUntil(ctx, time.Minute, "sink running", func() (bool, error) {
			s, err := n.API.sink(ctx, "pg")
			return err == nil && s.Running, err
		}); err != nil {
			return Memory{}, err
		}
	}
	select {
	case <-ctx.Done():
		return Memory{}, ctx.Err()
	case <-time.After(settle):
	}
	m, err := n.Memory()
	if err != nil {
		return m, err
	}
	return m, t.stopNode(n)
}

func mibOf(b int64) float64 { return float64(b) / (1 << 20) }

// dirSize is the disk space the regular files under dir take (blocks
// allocated: Badger's value log files are sparse).
func dirSize(dir string) (int64, error) {
	var total int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			fi, err := d.Info()
			if err != nil {
				return err
			}
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				total += st.Blocks * 512
			} else {
				total += fi.Size()
			}
		}
		return nil
	})
	return total, err
}
