package integration

// The deploy/ files are checked here without a container engine: they are
// parsed, and what they ask of the binary is asked of the binary built by
// TestMain (its commands and flags from its help, its config through
// `tributary config check`, its environment variables from the config it
// prints). deploy_run_test.go then starts nodes the way the files do.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"

	"gopkg.in/yaml.v3"

	tnode "github.com/tributary-sync/tributary/cmd/tributary/node"
)

// repoDir is the repository root, seen from this package.
const repoDir = ".."

var deployDir = filepath.Join(repoDir, "deploy")

// The ports every deploy file uses: the HTTP API and libp2p (TCP and QUIC).
const (
	apiPort    = "7465"
	libp2pPort = "7466"
)

// deployFiles lists the files under deploy/ whose name matches one of the
// patterns (filepath.Match on the base name).
func deployFiles(t *testing.T, patterns ...string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(deployDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		for _, pat := range patterns {
			if ok, _ := filepath.Match(pat, d.Name()); ok {
				out = append(out, p)
				break
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// yamlDocs decodes every document of a YAML file (merge keys resolved).
func yamlDocs(t *testing.T, path string) []map[string]any {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(readFile(t, path)))
	var docs []map[string]any
	for {
		var v map[string]any
		if err := dec.Decode(&v); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatalf("%s: %v", path, err)
		}
		if v != nil {
			docs = append(docs, v)
		}
	}
	if len(docs) == 0 {
		t.Fatalf("%s holds no YAML document", path)
	}
	return docs
}

// Accessors for decoded YAML and JSON.
func asMap(v any) map[string]any { m, _ := v.(map[string]any); return m }
func asList(v any) []any         { l, _ := v.([]any); return l }
func asString(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case nil:
		return ""
	default:
		return fmt.Sprint(x)
	}
}

// dig follows keys through nested maps.
func dig(v any, keys ...string) any {
	for _, k := range keys {
		v = asMap(v)[k]
	}
	return v
}

func asStrings(v any) []string {
	var out []string
	for _, x := range asList(v) {
		out = append(out, asString(x))
	}
	return out
}

// TestDeployFilesParse: every YAML and JSON file under deploy/ parses, and
// every file the checks below rely on exists.
func TestDeployFilesParse(t *testing.T) {
	yamls := deployFiles(t, "*.yml", "*.yaml")
	if len(yamls) < 10 {
		t.Fatalf("found %d YAML files under deploy/", len(yamls))
	}
	for _, p := range yamls {
		yamlDocs(t, p)
	}
	jsons := deployFiles(t, "*.json")
	if len(jsons) == 0 {
		t.Fatal("no JSON file under deploy/ (deploy/grafana/tributary.json)")
	}
	for _, p := range jsons {
		var v any
		if err := json.Unmarshal([]byte(readFile(t, p)), &v); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	for _, p := range []string{
		"Dockerfile", "README.md", "compose/docker-compose.yml", "compose/sinks.yml", "compose/nats-cluster.yml",
		"compose/nats-cluster.conf", "kubernetes/tributary.yaml", "kubernetes/nats-cluster.yaml",
		"systemd/tributary.service", "systemd/tributary.env", "systemd/config.yaml",
		"grafana/tributary.json", "prometheus/alerts.yml", "prometheus/prometheus.yml",
	} {
		if _, err := os.Stat(filepath.Join(deployDir, p)); err != nil {
			t.Errorf("deploy/%s: %v", p, err)
		}
	}
	if _, err := os.Stat(filepath.Join(repoDir, ".dockerignore")); err != nil {
		t.Errorf(".dockerignore at the repository root (the build context): %v", err)
	}
}

// TestDeployPorts: the API is on 7465 and libp2p on 7466 everywhere; the
// old libp2p port appears nowhere.
func TestDeployPorts(t *testing.T) {
	maddr := regexp.MustCompile(`/(tcp|udp)/(\d+)`)
	for _, p := range deployFiles(t, "*") {
		text := readFile(t, p)
		if strings.Contains(text, "4001") {
			t.Errorf("%s mentions 4001: libp2p listens on %s", p, libp2pPort)
		}
		for _, m := range maddr.FindAllStringSubmatch(text, -1) {
			if m[2] != libp2pPort && m[2] != "0" {
				t.Errorf("%s: libp2p multiaddr port %s, want %s", p, m[2], libp2pPort)
			}
		}
	}
}

// helpOf is what `tributary <path> --help` says a command takes.
type helpOf struct {
	path     []string
	subs     map[string]bool
	flags    map[string]bool // long names
	shorts   map[string]bool
	valued   map[string]bool // long or short names of flags that take a value
	runnable bool            // the command runs itself (not only its subcommands)
	noArgs   bool            // its usage names no positional argument
	envs     []string        // "(env X)" its help mentions
}

var (
	helpMu    sync.Mutex
	helpCache = map[string]*helpOf{}
)

var (
	flagLine = regexp.MustCompile(`^\s+(?:-([a-zA-Z]), )?--([a-z0-9][a-z0-9-]*)(?: ([a-zA-Z0-9]+))?(?:\s{2,}|$)`)
	envMark  = regexp.MustCompile(`\(env (TRIBUTARY_[A-Z0-9_]+)\)`)
)

// binHelp runs the binary's help for a command path, once per path.
func binHelp(t *testing.T, path ...string) *helpOf {
	t.Helper()
	key := strings.Join(path, " ")
	helpMu.Lock()
	defer helpMu.Unlock()
	if h, ok := helpCache[key]; ok {
		return h
	}
	out, err := exec.Command(bin, append(append([]string{}, path...), "--help")...).CombinedOutput()
	if err != nil {
		t.Fatalf("tributary %s --help: %v\n%s", key, err, out)
	}
	h := &helpOf{path: path, subs: map[string]bool{}, flags: map[string]bool{}, shorts: map[string]bool{}, valued: map[string]bool{}}
	section := ""
	usage := strings.TrimSpace("tributary " + key)
	for _, line := range strings.Split(string(out), "\n") {
		if strings.HasSuffix(line, ":") && !strings.HasPrefix(line, " ") {
			section = strings.TrimSuffix(line, ":")
			continue
		}
		if strings.TrimSpace(line) == "" {
			continue
		}
		switch section {
		case "Usage":
			u := strings.TrimSpace(line)
			if !strings.HasSuffix(u, "[command]") {
				h.runnable = true
				h.noArgs = u == usage+" [flags]" || u == usage
			}
		case "Available Commands":
			h.subs[strings.Fields(line)[0]] = true
		case "Flags", "Global Flags":
			m := flagLine.FindStringSubmatch(line)
			if m == nil {
				continue
			}
			h.flags[m[2]] = true
			if m[1] != "" {
				h.shorts[m[1]] = true
			}
			if m[3] != "" {
				h.valued[m[2]] = true
				h.valued[m[1]] = true
			}
		}
	}
	for _, m := range envMark.FindAllStringSubmatch(string(out), -1) {
		h.envs = append(h.envs, m[1])
	}
	if len(h.flags) == 0 {
		t.Fatalf("tributary %s --help lists no flags:\n%s", key, out)
	}
	helpCache[key] = h
	return h
}

// invocation is a `tributary` command line found in a deploy file.
type invocation struct {
	where string
	args  []string // after the binary's name
}

// parse reports what in the invocation the binary does not take (an
// unknown subcommand or flag, a flag without its value, an argument to a
// command that takes none) and returns the subcommand path and the flags,
// by long or short name, with their values.
func (inv invocation) parse(t *testing.T) (path []string, flags map[string][]string) {
	t.Helper()
	flags = map[string][]string{}
	h := binHelp(t)
	positional := false
	for i := 0; i < len(inv.args); i++ {
		a := inv.args[i]
		if a == "--" {
			break
		}
		if strings.HasPrefix(a, "-") && len(a) > 1 {
			long := strings.HasPrefix(a, "--")
			name, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
			known := long && h.flags[name] || !long && len(name) == 1 && h.shorts[name]
			if !known {
				t.Errorf("%s: tributary %s has no flag %s (in: tributary %s)", inv.where, strings.Join(path, " "), a, strings.Join(inv.args, " "))
				continue
			}
			if h.valued[name] && !hasVal {
				if i+1 >= len(inv.args) {
					t.Errorf("%s: flag %s lacks its value (in: tributary %s)", inv.where, a, strings.Join(inv.args, " "))
					break
				}
				i++
				val = inv.args[i]
			}
			flags[name] = append(flags[name], val)
			continue
		}
		if !positional && h.subs[a] {
			path = append(path, a)
			h = binHelp(t, path...)
			continue
		}
		positional = true
		switch {
		case !h.runnable:
			t.Errorf("%s: %q is not a command of tributary %s (in: tributary %s)", inv.where, a, strings.Join(path, " "), strings.Join(inv.args, " "))
		case h.noArgs:
			t.Errorf("%s: tributary %s takes no argument, got %q", inv.where, strings.Join(path, " "), a)
		}
	}
	if !h.runnable {
		t.Errorf("%s: tributary %s needs a subcommand (in: tributary %s)", inv.where, strings.Join(path, " "), strings.Join(inv.args, " "))
	}
	return path, flags
}

// shellWords splits a line of shell into words (quotes removed) and stops
// at a comment.
func shellWords(line string) []string {
	var words []string
	var cur strings.Builder
	in := false
	var quote rune
	for _, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			} else {
				cur.WriteRune(r)
			}
		case r == '\'' || r == '"':
			quote, in = r, true
		case r == ' ' || r == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case r == '#' && !in:
			return words
		default:
			cur.WriteRune(r)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words
}

// shellInvocations finds the `tributary` commands in a line of shell: the
// word tributary (or a path ending in /bin/tributary) followed by a
// subcommand-like word or a flag, and not the value of an option such as
// `sudo -u tributary`.
func shellInvocations(where, line string) []invocation {
	line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "$ "))
	words := shellWords(line)
	var out []invocation
	word := regexp.MustCompile(`^[a-z][a-z-]*$`)
	for i, w := range words {
		if w != "tributary" && !strings.HasSuffix(w, "/bin/tributary") {
			continue
		}
		if i > 0 && strings.HasPrefix(words[i-1], "-") && words[i-1] != "--" || i+1 >= len(words) {
			continue
		}
		if next := words[i+1]; !word.MatchString(next) && !strings.HasPrefix(next, "-") {
			continue
		}
		var args []string
		for _, a := range words[i+1:] {
			if a == "&&" || a == "||" || a == ";" || a == "|" || strings.HasPrefix(a, "<") || strings.HasPrefix(a, ">") || strings.HasPrefix(a, "2>") {
				break
			}
			end := strings.HasSuffix(a, ";")
			args = append(args, strings.TrimSuffix(a, ";"))
			if end {
				break
			}
		}
		out = append(out, invocation{where: where, args: args})
	}
	return out
}

var codeSpan = regexp.MustCompile("`([^`]+)`")

// commentInvocations finds the commands shown in a file's comments: in
// `code spans`, and on comment lines indented as examples ("#   cmd").
func commentInvocations(t *testing.T, path string) []invocation {
	t.Helper()
	var out []invocation
	for i, line := range strings.Split(readFile(t, path), "\n") {
		trimmed := strings.TrimSpace(line)
		if !strings.HasPrefix(trimmed, "#") {
			continue
		}
		where := fmt.Sprintf("%s:%d", path, i+1)
		text := strings.TrimPrefix(trimmed, "#")
		for _, m := range codeSpan.FindAllStringSubmatch(text, -1) {
			out = append(out, shellInvocations(where, m[1])...)
		}
		if strings.HasPrefix(text, "   ") {
			out = append(out, shellInvocations(where, text)...)
		}
	}
	return out
}

// markdownInvocations finds the commands in a Markdown file's code blocks
// and code spans.
func markdownInvocations(t *testing.T, path string) []invocation {
	t.Helper()
	var out []invocation
	fence := false
	for i, line := range strings.Split(readFile(t, path), "\n") {
		where := fmt.Sprintf("%s:%d", path, i+1)
		if strings.HasPrefix(strings.TrimSpace(line), "```") {
			fence = !fence
			continue
		}
		if fence {
			out = append(out, shellInvocations(where, line)...)
			continue
		}
		for _, m := range codeSpan.FindAllStringSubmatch(line, -1) {
			out = append(out, shellInvocations(where, m[1])...)
		}
	}
	return out
}

// TestDeployDocumentedCommands: every `tributary ...` command shown in the
// comments of deploy/ files and in deploy/README.md is one the binary takes.
func TestDeployDocumentedCommands(t *testing.T) {
	var invs []invocation
	for _, p := range deployFiles(t, "*.yml", "*.yaml", "*.conf", "*.service", "*.env", "Dockerfile") {
		invs = append(invs, commentInvocations(t, p)...)
	}
	invs = append(invs, markdownInvocations(t, filepath.Join(deployDir, "README.md"))...)
	if len(invs) < 20 {
		t.Fatalf("found only %d documented tributary commands", len(invs))
	}
	t.Logf("%d documented tributary commands", len(invs))
	seen := map[string]bool{}
	for _, inv := range invs {
		inv.parse(t)
		if len(inv.args) > 0 {
			seen[inv.args[0]] = true
		}
	}
	for _, cmd := range []string{"init", "space", "join", "invite", "run", "status", "sinks", "config"} {
		if !seen[cmd] {
			t.Errorf("no deploy file or README shows `tributary %s`", cmd)
		}
	}
}

// configCheck runs `tributary config check` on a file and returns the
// config it gives (defaults filled in).
func configCheck(t *testing.T, path string) map[string]any {
	t.Helper()
	out, err := exec.Command(bin, "config", "check", path).CombinedOutput()
	if err != nil {
		t.Errorf("tributary config check %s: %v\n%s", path, err, out)
		return nil
	}
	var cfg map[string]any
	if err := yaml.Unmarshal(out, &cfg); err != nil {
		t.Fatalf("tributary config check %s printed what is not YAML: %v\n%s", path, err, out)
	}
	return cfg
}

// configCheckText checks a config given as text (a ConfigMap's).
func configCheckText(t *testing.T, where, text string) map[string]any {
	t.Helper()
	p := filepath.Join(t.TempDir(), strings.NewReplacer("/", "_", ":", "_").Replace(where)+".yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return configCheck(t, p)
}

var (
	envOnce  sync.Once
	envNames map[string]bool
)

// knownEnv are the environment variables the binary reads: every config
// key as TRIBUTARY_<SECTION>_<KEY> (from the config it prints), those its
// help names, and the API token file's.
func knownEnv(t *testing.T) map[string]bool {
	t.Helper()
	envOnce.Do(func() {
		envNames = map[string]bool{tnode.TokenFileEnv: true}
		cfg := configCheck(t, os.DevNull)
		for section, keys := range cfg {
			if section == "sinks" {
				continue
			}
			for key := range asMap(keys) {
				envNames["TRIBUTARY_"+strings.ToUpper(section)+"_"+strings.ToUpper(key)] = true
			}
		}
		for _, path := range [][]string{nil, {"run"}} {
			for _, e := range binHelp(t, path...).envs {
				envNames[e] = true
			}
		}
	})
	if len(envNames) < 30 || !envNames["TRIBUTARY_HOME"] || !envNames["TRIBUTARY_CONFIG"] || !envNames["TRIBUTARY_NATS_PASSWORD"] {
		t.Fatalf("environment variables read from the binary look wrong: %v", envNames)
	}
	return envNames
}

// checkEnv reports a TRIBUTARY_ variable the binary does not read.
func checkEnv(t *testing.T, where, name string) {
	t.Helper()
	if strings.HasPrefix(name, "TRIBUTARY_") && !knownEnv(t)[name] {
		t.Errorf("%s: the binary reads no environment variable %s", where, name)
	}
}

// TestDeployReadme: the README covers every file, the order of operations,
// the ports, the token, NATS and monitoring, and links only inside the
// repository.
func TestDeployReadme(t *testing.T) {
	readme := filepath.Join(deployDir, "README.md")
	text := readFile(t, readme)
	for _, p := range deployFiles(t, "*") {
		rel, _ := filepath.Rel(deployDir, p)
		if rel == "README.md" || strings.HasPrefix(filepath.Base(rel), ".") {
			continue
		}
		if !strings.Contains(text, filepath.ToSlash(rel)) {
			t.Errorf("deploy/README.md does not mention %s", rel)
		}
	}
	for _, want := range []string{apiPort, libp2pPort, "127.0.0.1", tnode.TokenFileEnv, "/healthz", "/readyz", "/metrics",
		"tributary init", "space create", "join", "--init", "replicas: 3", "tributary config check"} {
		if !strings.Contains(text, want) {
			t.Errorf("deploy/README.md does not mention %q", want)
		}
	}
	if strings.Contains(text, "http://") || strings.Contains(text, "https://") {
		t.Error("deploy/README.md links outside the repository")
	}
	link := regexp.MustCompile(`\]\(([^)#]+)(#[^)]*)?\)`)
	root, _ := filepath.Abs(repoDir)
	for _, m := range link.FindAllStringSubmatch(text, -1) {
		target, _ := filepath.Abs(filepath.Join(deployDir, m[1]))
		if !strings.HasPrefix(target, root+string(filepath.Separator)) {
			t.Errorf("deploy/README.md links to %s, outside the repository", m[1])
			continue
		}
		if _, err := os.Stat(target); err != nil {
			t.Errorf("deploy/README.md links to %s: %v", m[1], err)
		}
	}
}
