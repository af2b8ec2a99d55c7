package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// unit is a systemd unit file: section -> key -> values (in order).
type unit map[string]map[string][]string

func parseUnit(t *testing.T, path string) unit {
	t.Helper()
	u := unit{}
	section := ""
	for i, line := range strings.Split(readFile(t, path), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = strings.Trim(line, "[]")
			u[section] = map[string][]string{}
		case section == "":
			t.Errorf("%s:%d: %q outside a section", path, i+1, line)
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Errorf("%s:%d: %q is not KEY=VALUE", path, i+1, line)
				continue
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

func (u unit) last(section, key string) string {
	v := u[section][key]
	if len(v) == 0 {
		return ""
	}
	return v[len(v)-1]
}

// installs finds the install steps in the unit's comments: `install ...
// deploy/X /etc/Y` copies a file of the repository to where the unit
// reads it.
func installs(t *testing.T, path string) map[string]string {
	t.Helper()
	out := map[string]string{}
	re := regexp.MustCompile(`install\s.*\s(deploy/\S+)\s+(/\S+)`)
	for _, line := range strings.Split(readFile(t, path), "\n") {
		if m := re.FindStringSubmatch(line); m != nil {
			out[m[2]] = filepath.Join(repoDir, m[1])
		}
	}
	return out
}

// TestDeploySystemd: the unit runs `tributary run --config` with
// TRIBUTARY_HOME set, an EnvironmentFile of variables the binary reads, a
// config file of the repository that passes config check, and its
// hardening; its install steps create the key in the same home.
func TestDeploySystemd(t *testing.T) {
	path := filepath.Join(deployDir, "systemd", "tributary.service")
	u := parseUnit(t, path)
	for _, s := range []string{"Unit", "Service", "Install"} {
		if u[s] == nil {
			t.Fatalf("%s has no [%s]", path, s)
		}
	}
	env := map[string]string{}
	for _, e := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			checkEnv(t, path, k)
			env[k] = v
		}
	}
	home := env["TRIBUTARY_HOME"]
	if home == "" {
		t.Fatal("the unit does not set TRIBUTARY_HOME: the node would look in the user's ~/.tributary")
	}
	exec := strings.Fields(u.last("Service", "ExecStart"))
	if len(exec) < 2 || exec[0] != "/usr/local/bin/tributary" {
		t.Fatalf("ExecStart %v: want /usr/local/bin/tributary run ...", exec)
	}
	cmd, flags := invocation{where: path + " ExecStart", args: exec[1:]}.parse(t)
	if strings.Join(cmd, " ") != "run" {
		t.Fatalf("ExecStart runs tributary %v, want run", cmd)
	}
	copies := installs(t, path)
	cfg := flags["config"]
	if len(cfg) != 1 {
		t.Fatalf("ExecStart does not pass --config")
	}
	src, ok := copies[cfg[0]]
	if !ok {
		t.Fatalf("the install steps put no file of deploy/ at %s", cfg[0])
	}
	c := configCheck(t, src)
	if listen := asString(dig(c, "http", "listen")); !strings.HasPrefix(listen, "127.0.0.1:") {
		t.Errorf("%s: the API listens on %s: keep it on 127.0.0.1", src, listen)
	}
	envFiles := u["Service"]["EnvironmentFile"]
	if len(envFiles) == 0 {
		t.Error("the unit has no EnvironmentFile")
	}
	for _, ef := range envFiles {
		dst := strings.TrimPrefix(ef, "-")
		src, ok := copies[dst]
		if !ok {
			t.Errorf("the install steps put no file of deploy/ at %s", dst)
			continue
		}
		assign := regexp.MustCompile(`^#?\s*([A-Z][A-Z0-9_]*)=`)
		n := 0
		for _, line := range strings.Split(readFile(t, src), "\n") {
			if m := assign.FindStringSubmatch(strings.TrimSpace(line)); m != nil {
				checkEnv(t, src, m[1])
				n++
			}
		}
		if n == 0 {
			t.Errorf("%s sets no variable", src)
		}
	}
	for key, want := range map[string]string{
		"User": "tributary", "NoNewPrivileges": "true", "ProtectSystem": "strict", "ProtectHome": "true",
		"PrivateTmp": "true", "ReadWritePaths": home,
	} {
		if got := u.last("Service", key); got != want {
			t.Errorf("[Service] %s=%q, want %q", key, got, want)
		}
	}
	// The documented steps: the user's home is the unit's, and init runs
	// with the unit's TRIBUTARY_HOME.
	text := readFile(t, path)
	if !regexp.MustCompile(`useradd\s.*--home-dir\s+` + regexp.QuoteMeta(home) + `\s.*\b` + u.last("Service", "User") + `\b`).MatchString(text) {
		t.Errorf("the install steps do not create user %s with home %s", u.last("Service", "User"), home)
	}
	inits := 0
	for _, inv := range commentInvocations(t, path) {
		if len(inv.args) > 0 && (inv.args[0] == "init" || inv.args[0] == "join" || inv.args[0] == "space") {
			inits++
		}
	}
	for _, line := range strings.Split(text, "\n") {
		if strings.Contains(line, "tributary init") || strings.Contains(line, "tributary join") {
			if !strings.Contains(line, "TRIBUTARY_HOME="+home+" ") && !strings.Contains(line, "--home "+home+" ") {
				t.Errorf("install step %q does not set TRIBUTARY_HOME=%s: the key would land in ~/.tributary", strings.TrimSpace(line), home)
			}
		}
	}
	if inits < 2 {
		t.Errorf("the install steps show %d of tributary init and join", inits)
	}
}

// TestDeployRunSystemd: the unit's install steps run as written (init and
// join as the user, with the unit's TRIBUTARY_HOME; the config and the
// environment file where the unit reads them), then its ExecStart with its
// environment: the node starts, answers /healthz, its API with the home's
// token, and /readyz names its PostgreSQL sink, whose database is not run
// here.
func TestDeployRunSystemd(t *testing.T) {
	path := filepath.Join(deployDir, "systemd", "tributary.service")
	u := parseUnit(t, path)
	root := t.TempDir()
	c := newContainer(path, nil)
	for _, e := range u["Service"]["Environment"] {
		for _, kv := range strings.Fields(e) {
			k, v, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			c.env[k] = v
		}
	}
	home := c.env["TRIBUTARY_HOME"]
	if home == "" {
		t.Fatal("the unit does not set TRIBUTARY_HOME")
	}
	c.mounts[home] = filepath.Join(root, "home") // useradd --create-home makes it
	if err := os.Mkdir(c.mounts[home], 0o700); err != nil {
		t.Fatal(err)
	}
	for dst, src := range installs(t, path) {
		local := filepath.Join(root, "installed", filepath.FromSlash(dst))
		if err := os.MkdirAll(filepath.Dir(local), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(local, []byte(readFile(t, src)), 0o600); err != nil {
			t.Fatal(err)
		}
		c.mounts[dst] = local
	}
	for _, ef := range u["Service"]["EnvironmentFile"] {
		file, ok := c.mounts[strings.TrimPrefix(ef, "-")]
		if !ok {
			t.Fatalf("the install steps put no file at %s", ef)
		}
		for _, line := range strings.Split(readFile(t, file), "\n") {
			line = strings.TrimSpace(line)
			if k, v, ok := strings.Cut(line, "="); ok && !strings.HasPrefix(line, "#") {
				c.env[k] = v
			}
		}
	}
	for k, v := range c.env {
		c.env[k] = c.rewrite(v)
	}
	steps := 0
	for i, line := range strings.Split(readFile(t, path), "\n") {
		text, ok := strings.CutPrefix(strings.TrimSpace(line), "#   ")
		if !ok {
			continue
		}
		for _, inv := range shellInvocations(fmt.Sprintf("%s:%d", path, i+1), text) {
			if !strings.Contains(text, "TRIBUTARY_HOME="+home+" ") {
				t.Fatalf("%s: %q does not run with the unit's home", inv.where, text)
			}
			args := inv.args
			if contains(args, "CODE") {
				args = replaceWord(args, "CODE", founder(t))
			}
			c.exec(t, nil, args...)
			steps++
		}
	}
	if steps < 2 {
		t.Fatalf("%s shows %d tributary steps, want init and join", path, steps)
	}
	exec := strings.Fields(u.last("Service", "ExecStart"))
	for _, a := range exec[1:] {
		c.args = append(c.args, c.rewrite(a))
	}
	var sinks []string
	for _, sc := range asList(c.config(t)["sinks"]) {
		if asString(dig(sc, "type")) != "memory" {
			sinks = append(sinks, asString(dig(sc, "name")))
		}
	}
	if len(sinks) == 0 {
		t.Fatalf("%s feeds no database", c.args)
	}
	p := c.start(t)
	tok, err := os.ReadFile(filepath.Join(c.mounts[home], "api-token"))
	if err != nil {
		t.Fatalf("the home holds no API token after the steps: %v", err)
	}
	p.probe(t, strings.TrimSpace(string(tok)), sinks...)
	if out := c.exec(t, nil, "--json", "space", "list"); !strings.Contains(out, "library") {
		t.Errorf("after the steps the home holds no space: %s", out)
	}
}
