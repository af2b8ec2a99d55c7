package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// cli runs a command of the binary on home with --json and decodes what
// it prints into out (nil: ignore it).
func (t *trial) cli(ctx context.Context, home string, out any, args ...string) error {
	cmd := exec.CommandContext(ctx, t.h.cfg.Binary, append([]string{"--home", home, "--json"}, args...)...)
	cmd.Env = append(os.Environ(), "TRIBUTARY_HOME=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("tributary %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	if out != nil {
		if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
			return fmt.Errorf("tributary %s printed %q: %v", strings.Join(args, " "), stdout.String(), err)
		}
	}
	return nil
}

// newHome makes a home with `tributary init`.
func (t *trial) newHome(ctx context.Context, name string) (string, error) {
	home := filepath.Join(t.dir, name)
	return home, t.cli(ctx, home, nil, "init")
}

// newSpace founds the bench's space in home.
func (t *trial) newSpace(ctx context.Context, home string) (string, error) {
	var out struct {
		Space string `json:"space"`
	}
	if err := t.cli(ctx, home, &out, "space", "create", "--schema", t.h.schema, "--name", "bench"); err != nil {
		return "", err
	}
	return out.Space, nil
}

// single is one home holding the bench's space.
func (t *trial) single(ctx context.Context, name string) (home, space string, err error) {
	if home, err = t.newHome(ctx, name); err != nil {
		return "", "", err
	}
	space, err = t.newSpace(ctx, home)
	return home, space, err
}

// pair makes homes A and B of one space, each a member the other knows:
// A founds it and invites B, B joins with the code, and a bundle each way
// carries the history to B and B's grant to A (so each admits the other
// at its libp2p gate without a round of admission by proof).
func (t *trial) pair(ctx context.Context) (a, b, space string, err error) {
	if a, space, err = t.single(ctx, "A"); err != nil {
		return
	}
	if b, err = t.newHome(ctx, "B"); err != nil {
		return
	}
	var inv struct {
		Code string `json:"code"`
	}
	if err = t.cli(ctx, a, &inv, "invite", "--space", space); err != nil {
		return
	}
	if err = t.cli(ctx, b, nil, "join", inv.Code); err != nil {
		return
	}
	toB, toA := filepath.Join(t.dir, "a.trb"), filepath.Join(t.dir, "b.trb")
	for _, step := range [][]string{{a, "export", "--space", space, "-o", toB}, {b, "import", toB}, {b, "export", "--space", space, "-o", toA}, {a, "import", toA}} {
		if err = t.cli(ctx, step[0], nil, step[1:]...); err != nil {
			return
		}
	}
	return a, b, space, nil
}

// sinkConfig writes a `run --config` file with one postgres sink, "pg".
func (t *trial) sinkConfig(name, space, url string) (string, error) {
	p := filepath.Join(t.dir, name+".yaml")
	text := fmt.Sprintf("sinks:\n  - name: pg\n    type: postgres\n    url: %q\n    space: %q\n", url, space)
	return p, os.WriteFile(p, []byte(text), 0o600)
}

// loadReport is what `tributary load --json` prints.
type loadReport struct {
	Operations int `json:"operations"`
	Created    int `json:"created"`
	Batches    int `json:"batches"`
	Changes    int `json:"changes"`
}

// load runs `tributary load` of file into home's space (through its
// node when one runs) and returns its report and wall time.
func (t *trial) load(ctx context.Context, home, space, file string, want int) (loadReport, time.Duration, error) {
	var rep loadReport
	start := time.Now()
	err := t.cli(ctx, home, &rep, "load", "--space", space, "--batch", fmt.Sprint(t.h.cfg.LoadBatch), file)
	el := time.Since(start)
	if err == nil && rep.Operations != want {
		err = fmt.Errorf("load of %s wrote %d operations, want %d", file, rep.Operations, want)
	}
	return rep, el, err
}

// items writes n generated documents to a file for `tributary load`.
func (t *trial) items(prefix string, n int) (string, int64, error) {
	p := filepath.Join(t.dir, fmt.Sprintf("%s-%d.ndjson", prefix, n))
	size, err := writeItems(p, t.h.cfg.Seed, prefix, n)
	return p, size, err
}
