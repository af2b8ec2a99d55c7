package integration

import (
	"encoding/json"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction, continuation lines joined.
type instruction struct {
	cmd, args string
	line      int
}

// dockerfile is a Dockerfile's stages.
type dockerfile struct {
	stages [][]instruction
}

var dockerInstructions = map[string]bool{
	"FROM": true, "RUN": true, "CMD": true, "LABEL": true, "EXPOSE": true, "ENV": true, "ADD": true, "COPY": true,
	"ENTRYPOINT": true, "VOLUME": true, "USER": true, "WORKDIR": true, "ARG": true, "ONBUILD": true,
	"STOPSIGNAL": true, "HEALTHCHECK": true, "SHELL": true,
}

func parseDockerfile(t *testing.T, path string) dockerfile {
	t.Helper()
	var d dockerfile
	var cur strings.Builder
	start := 0
	flush := func() {
		text := strings.TrimSpace(cur.String())
		cur.Reset()
		if text == "" {
			return
		}
		cmd, args, _ := strings.Cut(text, " ")
		cmd = strings.ToUpper(cmd)
		if !dockerInstructions[cmd] {
			t.Errorf("%s:%d: unknown instruction %q", path, start, cmd)
		}
		if cmd == "FROM" {
			d.stages = append(d.stages, nil)
		} else if len(d.stages) == 0 {
			if cmd != "ARG" {
				t.Errorf("%s:%d: %s before FROM", path, start, cmd)
			}
			return
		}
		n := len(d.stages) - 1
		d.stages[n] = append(d.stages[n], instruction{cmd: cmd, args: strings.TrimSpace(args), line: start})
	}
	for i, line := range strings.Split(readFile(t, path), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "#") {
			continue
		}
		if cur.Len() == 0 {
			if trimmed == "" {
				continue
			}
			start = i + 1
		}
		if strings.HasSuffix(trimmed, "\\") {
			cur.WriteString(strings.TrimSuffix(trimmed, "\\") + " ")
			continue
		}
		cur.WriteString(trimmed)
		flush()
	}
	flush()
	if len(d.stages) == 0 {
		t.Fatalf("%s has no FROM", path)
	}
	return d
}

// final is the image's stage: its instructions by command.
func (d dockerfile) final() map[string][]instruction {
	out := map[string][]instruction{}
	for _, in := range d.stages[len(d.stages)-1] {
		out[in.cmd] = append(out[in.cmd], in)
	}
	return out
}

// execForm decodes a JSON exec form (["a", "b"]).
func execForm(t *testing.T, in instruction, text string) []string {
	t.Helper()
	var argv []string
	if err := json.Unmarshal([]byte(text), &argv); err != nil {
		t.Errorf("Dockerfile:%d: %s %s: want the exec form [\"...\"] (signals reach the process): %v", in.line, in.cmd, text, err)
	}
	return argv
}

// image is what the Dockerfile gives a container of the image.
type image struct {
	uid, gid   string
	entrypoint []string
	cmd        []string
	env        map[string]string
	exposed    map[string]bool
	volumes    []string
	installed  string // the final stage's RUN lines
	healthz    []string
}

func dockerImage(t *testing.T) image {
	t.Helper()
	path := filepath.Join(deployDir, "Dockerfile")
	final := parseDockerfile(t, path).final()
	img := image{env: map[string]string{}, exposed: map[string]bool{}}
	last := func(cmd string) (instruction, bool) {
		ins := final[cmd]
		if len(ins) == 0 {
			return instruction{}, false
		}
		return ins[len(ins)-1], true
	}
	if u, ok := last("USER"); ok {
		img.uid, img.gid, _ = strings.Cut(u.args, ":")
	}
	if e, ok := last("ENTRYPOINT"); ok {
		img.entrypoint = execForm(t, e, e.args)
	}
	if c, ok := last("CMD"); ok {
		img.cmd = execForm(t, c, c.args)
	}
	for _, e := range final["ENV"] {
		for _, kv := range strings.Fields(e.args) {
			k, v, _ := strings.Cut(kv, "=")
			img.env[k] = v
		}
	}
	for _, e := range final["EXPOSE"] {
		for _, p := range strings.Fields(e.args) {
			if !strings.Contains(p, "/") {
				p += "/tcp"
			}
			img.exposed[p] = true
		}
	}
	for _, v := range final["VOLUME"] {
		var vols []string
		if json.Unmarshal([]byte(v.args), &vols) != nil {
			vols = strings.Fields(v.args)
		}
		img.volumes = append(img.volumes, vols...)
	}
	for _, r := range final["RUN"] {
		img.installed += r.args + "\n"
	}
	if h, ok := last("HEALTHCHECK"); ok {
		if i := strings.Index(h.args, "CMD "); i >= 0 {
			img.healthz = execForm(t, h, strings.TrimSpace(h.args[i+4:]))
		}
	}
	return img
}

// installs reports whether the final stage installs a package.
func (img image) installs(pkg string) bool {
	re := regexp.MustCompile(`(apt-get|apt|apk|microdnf|dnf|yum)\s+(install|add)\b[^\n&;|]*\s` + regexp.QuoteMeta(pkg) + `(\s|$)`)
	return re.MatchString(img.installed)
}

// TestDeployDockerfile: the image runs as a numeric user, trusts the
// system CAs, exposes the API and libp2p (TCP and QUIC), starts on an empty
// volume, and runs only commands the binary has.
func TestDeployDockerfile(t *testing.T) {
	img := dockerImage(t)
	if !regexp.MustCompile(`^[1-9][0-9]*$`).MatchString(img.uid) || (img.gid != "" && !regexp.MustCompile(`^[0-9]+$`).MatchString(img.gid)) {
		t.Errorf("USER %q: want a numeric UID (and GID), not 0, so that runAsNonRoot can verify it", img.uid+":"+img.gid)
	}
	if !img.installs("ca-certificates") {
		t.Error("the image does not install ca-certificates: TLS to NATS and the databases would fail")
	}
	for _, p := range []string{apiPort + "/tcp", libp2pPort + "/tcp", libp2pPort + "/udp"} {
		if !img.exposed[p] {
			t.Errorf("the image does not EXPOSE %s", p)
		}
	}
	if len(img.entrypoint) != 1 || filepath.Base(img.entrypoint[0]) != "tributary" {
		t.Fatalf("ENTRYPOINT %q: want [\"tributary\"]", img.entrypoint)
	}
	home := img.env["TRIBUTARY_HOME"]
	if home == "" || !contains(img.volumes, home) {
		t.Errorf("TRIBUTARY_HOME %q is not a VOLUME (%v)", home, img.volumes)
	}
	inv := invocation{where: "Dockerfile CMD", args: img.cmd}
	path, flags := inv.parse(t)
	if strings.Join(path, " ") != "run" {
		t.Fatalf("CMD runs tributary %v, want run", path)
	}
	if _, ok := flags["init"]; !ok {
		t.Error("CMD lacks --init: a container on an empty volume would stop with no key")
	}
	if got := flags["http"]; len(got) != 1 || !strings.HasSuffix(got[0], ":"+apiPort) {
		t.Errorf("CMD --http %v: want the API on port %s", got, apiPort)
	}
	for _, want := range []string{"/tcp/" + libp2pPort, "/udp/" + libp2pPort + "/quic-v1"} {
		if !containsSubstring(flags["p2p"], want) {
			t.Errorf("CMD listens on %v: want a --p2p with %s", flags["p2p"], want)
		}
	}
	checkHealthcheck(t, "Dockerfile HEALTHCHECK", img, img.healthz, apiPort)
}

// checkHealthcheck: a container health check asks /healthz or /readyz on
// the API's port with a tool the image has.
func checkHealthcheck(t *testing.T, where string, img image, argv []string, port string) {
	t.Helper()
	if len(argv) == 0 {
		t.Errorf("%s: no health check", where)
		return
	}
	if argv[0] == "CMD" || argv[0] == "CMD-SHELL" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		t.Errorf("%s: empty health check", where)
		return
	}
	tool := filepath.Base(argv[0])
	switch tool {
	case "tributary":
		invocation{where: where, args: argv[1:]}.parse(t)
		return
	case "wget", "curl":
		if !img.installs(tool) {
			t.Errorf("%s runs %s, which the image does not install", where, tool)
		}
	default:
		t.Errorf("%s runs %q: the image has wget and the binary", where, argv[0])
		return
	}
	url := argv[len(argv)-1]
	if !regexp.MustCompile(`^http://(127\.0\.0\.1|localhost):` + port + `/(healthz|readyz)$`).MatchString(url) {
		t.Errorf("%s asks %s: want http://127.0.0.1:%s/healthz (or /readyz), which need no token", where, url, port)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func containsSubstring(list []string, sub string) bool {
	for _, x := range list {
		if strings.Contains(x, sub) {
			return true
		}
	}
	return false
}

// TestDeployDockerignore: the build context leaves out history and
// secrets, and keeps every file the build needs.
func TestDeployDockerignore(t *testing.T) {
	var patterns []string
	for _, line := range strings.Split(readFile(t, filepath.Join(repoDir, ".dockerignore")), "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			patterns = append(patterns, line)
		}
	}
	for _, p := range []string{".git", "deploy/compose/secrets/alice-api-token", "integration/neo4jharness/target/x.jar"} {
		if !dockerIgnored(patterns, p) {
			t.Errorf(".dockerignore keeps %s in the build context", p)
		}
	}
	out, err := exec.Command("go", "list", "-deps", "-f",
		`{{if .Module}}{{if .Module.Main}}{{.Dir}}|{{join .GoFiles ","}}|{{join .EmbedFiles ","}}{{end}}{{end}}`,
		"../cmd/tributary").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, _ := filepath.Abs(repoDir)
	needed := []string{"go.mod", "go.sum"}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		parts := strings.Split(line, "|")
		if len(parts) != 3 {
			continue
		}
		dir, _ := filepath.Rel(root, parts[0])
		for _, f := range append(strings.Split(parts[1], ","), strings.Split(parts[2], ",")...) {
			if f != "" {
				needed = append(needed, filepath.ToSlash(filepath.Join(dir, f)))
			}
		}
	}
	if len(needed) < 50 {
		t.Fatalf("go list found only %d files the build needs", len(needed))
	}
	for _, f := range needed {
		if dockerIgnored(patterns, f) {
			t.Errorf(".dockerignore leaves out %s, which go build ./cmd/tributary needs", f)
		}
	}
}

// dockerIgnored applies .dockerignore rules to a path of the context: a
// pattern matches the path or one of its parent directories; the last
// matching pattern wins, and "!" keeps.
func dockerIgnored(patterns []string, path string) bool {
	ignored := false
	for _, p := range patterns {
		keep := strings.HasPrefix(p, "!")
		p = strings.TrimPrefix(strings.TrimPrefix(p, "!"), "/")
		re := globRegexp(p)
		parts := strings.Split(path, "/")
		for i := range parts {
			if re.MatchString(strings.Join(parts[:i+1], "/")) {
				ignored = !keep
				break
			}
		}
	}
	return ignored
}

// globRegexp turns a .dockerignore pattern into a regexp (** crosses
// directories, * and ? do not).
func globRegexp(p string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(p); i++ {
		switch {
		case strings.HasPrefix(p[i:], "**/"):
			b.WriteString("(.*/)?")
			i += 2
		case strings.HasPrefix(p[i:], "**"):
			b.WriteString(".*")
			i++
		case p[i] == '*':
			b.WriteString("[^/]*")
		case p[i] == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}
