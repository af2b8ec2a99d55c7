package bench

import (
	"bufio"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Machine is where a run was measured.
type Machine struct {
	CPUs     int    `json:"cpus"`
	Model    string `json:"cpu_model"`
	MemBytes int64  `json:"mem_bytes"`
	Go       string `json:"go"`
	OS       string `json:"os"`
	Commit   string `json:"commit"`
	Modified bool   `json:"modified"` // built from a tree with uncommitted changes
	// CommitFrom says where Commit comes from: "build" (stamped by go
	// build) or the directory git was asked in (a build without VCS
	// stamping, e.g. GOFLAGS=-buildvcs=false, run from a checkout).
	CommitFrom string `json:"commit_from,omitempty"`
}

// ThisMachine describes the machine and the build running the bench.
func ThisMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH,
		Model: procField("/proc/cpuinfo", "model name"), Commit: "unknown"}
	if kb := procField("/proc/meminfo", "MemTotal"); kb != "" {
		n, _ := strconv.ParseInt(strings.TrimSuffix(kb, " kB"), 10, 64)
		m.MemBytes = n << 10
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				m.Commit, m.CommitFrom = s.Value, "build"
			case "vcs.modified":
				m.Modified = s.Value == "true"
			}
		}
	}
	if m.CommitFrom == "" {
		wd, _ := os.Getwd()
		if out, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil {
			m.Commit, m.CommitFrom = strings.TrimSpace(string(out)), wd
			if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil {
				m.Modified = len(strings.TrimSpace(string(st))) > 0
			}
		}
	}
	return m
}

// procField is the value of the first "key: value" line of a /proc file.
func procField(path, key string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(k) == key {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
