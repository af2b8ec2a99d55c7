package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// runFile in a home says a node is running there and where its HTTP API
// listens. Other commands on the home go through it: Badger lets one
// process hold a store.
const runFile = "run.json"

type runInfo struct {
	PID  int    `json:"pid"`
	HTTP string `json:"http"`
}

// errForwarded stops a command whose work the running node did.
var errForwarded = errors.New("forwarded to the running node")

// runningNode returns the running node's info, if one holds the home.
func runningNode(home string) (*runInfo, bool) {
	b, err := os.ReadFile(filepath.Join(home, runFile))
	if err != nil {
		return nil, false
	}
	var ri runInfo
	if json.Unmarshal(b, &ri) != nil || ri.PID <= 0 || ri.HTTP == "" {
		return nil, false
	}
	if err := syscall.Kill(ri.PID, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return nil, false // stale: the node died without cleaning up
	}
	return &ri, true
}

// pathFlags are flags whose values are file paths, made absolute before a
// command travels to the running node (it has another working directory).
var pathFlags = map[string]bool{"-o": true, "--out": true, "--output": true, "--schema": true, "--config": true}

func absArgs(cmdName string, args []string) []string {
	out := make([]string, len(args))
	copy(out, args)
	for i := 0; i < len(out); i++ {
		a := out[i]
		if pathFlags[a] && i+1 < len(out) {
			if p, err := filepath.Abs(out[i+1]); err == nil {
				out[i+1] = p
			}
			i++
			continue
		}
		for f := range pathFlags {
			if len(a) > len(f)+1 && a[:len(f)+1] == f+"=" {
				if p, err := filepath.Abs(a[len(f)+1:]); err == nil {
					out[i] = f + "=" + p
				}
			}
		}
	}
	if cmdName == "import" {
		for i, a := range out {
			if a == "import" && i+1 < len(out) {
				if p, err := filepath.Abs(out[i+1]); err == nil {
					out[i+1] = p
				}
			}
		}
	}
	return out
}

// cliRequest and cliReply are the body of POST /v1/cli.
type cliRequest struct {
	Args []string `json:"args"`
}

type cliReply struct {
	Stdout string `json:"stdout"`
	Error  string `json:"error,omitempty"`
}

// forward runs args on the running node and prints what it printed.
func forward(ctx context.Context, ri *runInfo, args []string, out io.Writer) error {
	body, _ := json.Marshal(cliRequest{Args: args})
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+ri.HTTP+"/v1/cli", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("the node running on this home (pid %d, %s) did not answer: %w", ri.PID, ri.HTTP, err)
	}
	defer resp.Body.Close()
	var rep cliReply
	if err := json.NewDecoder(io.LimitReader(resp.Body, 256<<20)).Decode(&rep); err != nil {
		return fmt.Errorf("the running node sent a bad reply: %w", err)
	}
	if _, err := io.WriteString(out, rep.Stdout); err != nil {
		return err
	}
	if rep.Error != "" {
		return errors.New(rep.Error)
	}
	return errForwarded
}
