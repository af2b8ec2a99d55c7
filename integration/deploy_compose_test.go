package integration

import (
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	tnode "github.com/tributary-sync/tributary/cmd/tributary/node"
)

// composeFile is a compose file, decoded.
type composeFile struct {
	path     string
	dir      string
	services map[string]map[string]any
	secrets  map[string]any
	volumes  map[string]any
}

func composeFiles(t *testing.T) []composeFile {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(deployDir, "compose", "*.yml"))
	if len(paths) < 3 {
		t.Fatalf("found %d compose files", len(paths))
	}
	var out []composeFile
	for _, p := range paths {
		doc := yamlDocs(t, p)[0]
		cf := composeFile{path: p, dir: filepath.Dir(p), services: map[string]map[string]any{},
			secrets: asMap(doc["secrets"]), volumes: asMap(doc["volumes"])}
		for name, s := range asMap(doc["services"]) {
			cf.services[name] = asMap(s)
		}
		if len(cf.services) == 0 {
			t.Fatalf("%s has no services", p)
		}
		out = append(out, cf)
	}
	return out
}

func (cf composeFile) names() []string {
	var names []string
	for n := range cf.services {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// isTributary: the service runs the image of deploy/Dockerfile.
func (cf composeFile) isTributary(s map[string]any) bool {
	df := asString(dig(s, "build", "dockerfile"))
	return strings.HasSuffix(df, "deploy/Dockerfile") || strings.HasPrefix(asString(s["image"]), "tributary")
}

func isNATS(s map[string]any) bool { return strings.HasPrefix(asString(s["image"]), "nats") }

// mount is a volume of a service: a named volume or a file or directory
// of the repository.
type mount struct {
	source, target string
	named          bool
}

func (cf composeFile) mounts(t *testing.T, where string, s map[string]any) []mount {
	t.Helper()
	var out []mount
	for _, v := range asList(s["volumes"]) {
		var m mount
		if long := asMap(v); long != nil {
			m = mount{source: asString(long["source"]), target: asString(long["target"]), named: asString(long["type"]) == "volume"}
		} else {
			parts := strings.Split(asString(v), ":")
			if len(parts) < 2 {
				t.Errorf("%s: volume %q names no source", where, v)
				continue
			}
			m = mount{source: parts[0], target: parts[1]}
			m.named = !strings.HasPrefix(m.source, ".") && !strings.HasPrefix(m.source, "/") && !strings.HasPrefix(m.source, "~")
		}
		if m.named {
			if _, ok := cf.volumes[m.source]; !ok {
				t.Errorf("%s: volume %q is not declared under volumes:", where, m.source)
			}
		} else {
			m.source = filepath.Join(cf.dir, m.source)
			if _, err := os.Stat(m.source); err != nil {
				t.Errorf("%s: mounts %s: %v", where, m.source, err)
			}
		}
		out = append(out, m)
	}
	return out
}

// env is a service's environment (map or list form).
func serviceEnv(s map[string]any) map[string]string {
	env := map[string]string{}
	if m := asMap(s["environment"]); m != nil {
		for k, v := range m {
			env[k] = asString(v)
		}
	}
	for _, kv := range asStrings(s["environment"]) {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	return env
}

// published is one port a service publishes on the host.
type published struct {
	hostIP, container, proto string
}

func ports(t *testing.T, where string, s map[string]any) []published {
	t.Helper()
	var out []published
	for _, p := range asList(s["ports"]) {
		if long := asMap(p); long != nil {
			pr := asString(long["protocol"])
			if pr == "" {
				pr = "tcp"
			}
			out = append(out, published{hostIP: asString(long["host_ip"]), container: asString(long["target"]), proto: pr})
			continue
		}
		spec, proto, _ := strings.Cut(asString(p), "/")
		if proto == "" {
			proto = "tcp"
		}
		parts := strings.Split(spec, ":")
		pub := published{container: parts[len(parts)-1], proto: proto}
		if len(parts) == 3 {
			pub.hostIP = parts[0]
		}
		if len(parts) > 3 {
			t.Errorf("%s: cannot read port %q", where, p)
		}
		out = append(out, pub)
	}
	return out
}

// TestDeployCompose: every service restarts and has a health check; the
// Tributary services run commands the binary takes, start on an empty
// volume, load configs that pass `tributary config check`, publish the API
// on 127.0.0.1 only and read the API token from a secret; every NATS URL
// names a NATS service of the same file.
func TestDeployCompose(t *testing.T) {
	img := dockerImage(t)
	for _, cf := range composeFiles(t) {
		tributaries := 0
		for _, name := range cf.names() {
			s := cf.services[name]
			where := cf.path + ": " + name
			switch r := asString(s["restart"]); r {
			case "always", "unless-stopped", "on-failure":
			default:
				t.Errorf("%s: restart %q: want always, unless-stopped or on-failure", where, r)
			}
			test := asStrings(dig(s, "healthcheck", "test"))
			if test == nil && asString(dig(s, "healthcheck", "test")) != "" {
				test = []string{"CMD-SHELL", asString(dig(s, "healthcheck", "test"))}
			}
			if len(test) < 2 || test[0] == "NONE" || dig(s, "healthcheck", "disable") == true {
				t.Errorf("%s: no health check", where)
			}
			for dep, cond := range asMap(s["depends_on"]) {
				if _, ok := cf.services[dep]; !ok {
					t.Errorf("%s: depends on %q, no service of this file", where, dep)
				}
				if c := asString(dig(cond, "condition")); c != "service_healthy" {
					t.Errorf("%s: depends on %s with condition %q: want service_healthy (it has a health check)", where, dep, c)
				}
			}
			for _, p := range ports(t, where, s) {
				if p.container == apiPort && p.proto == "tcp" && p.hostIP != "127.0.0.1" {
					t.Errorf("%s: publishes the API (%s) on %q: want 127.0.0.1 only", where, apiPort, p.hostIP)
				}
			}
			mounts := cf.mounts(t, where, s)
			if isNATS(s) {
				natsService(t, cf, where, s, mounts)
				continue
			}
			if !cf.isTributary(s) {
				continue
			}
			tributaries++
			if ctx := asString(dig(s, "build", "context")); ctx != "" {
				got, _ := filepath.Abs(filepath.Join(cf.dir, ctx))
				want, _ := filepath.Abs(repoDir)
				if got != want {
					t.Errorf("%s: build context %s: want the repository root (deploy/Dockerfile builds ./cmd/tributary)", where, ctx)
				}
			}
			node := composeNode(t, cf, where, s, img, mounts)
			checkHealthcheck(t, where+" healthcheck", img, test, node.apiPort)
		}
		if tributaries == 0 {
			t.Errorf("%s runs no Tributary node", cf.path)
		}
	}
}

// composeTributary is what a compose file gives a Tributary node.
type composeTributary struct {
	args    []string
	env     map[string]string
	mounts  []mount
	cfg     map[string]any // the config it runs with (file over defaults)
	flags   map[string][]string
	apiPort string
}

func composeNode(t *testing.T, cf composeFile, where string, s map[string]any, img image, mounts []mount) composeTributary {
	t.Helper()
	if s["entrypoint"] != nil {
		t.Errorf("%s: sets entrypoint: the image's is tributary", where)
	}
	n := composeTributary{args: asStrings(s["command"]), env: map[string]string{}, mounts: mounts}
	if n.args == nil {
		n.args = img.cmd
	}
	for k, v := range img.env {
		n.env[k] = v
	}
	for k, v := range serviceEnv(s) {
		checkEnv(t, where, k)
		n.env[k] = v
	}
	path, flags := invocation{where: where + " command", args: n.args}.parse(t)
	n.flags = flags
	if strings.Join(path, " ") != "run" {
		t.Fatalf("%s runs tributary %v, want run", where, path)
	}
	if _, ok := flags["init"]; !ok {
		t.Errorf("%s: run without --init: on an empty volume the node stops with no key", where)
	}
	home := n.env["TRIBUTARY_HOME"]
	if m, ok := mountAt(mounts, home); !ok || !m.named {
		t.Errorf("%s: the home %s is not on a named volume", where, home)
	}
	cfgPath := n.env["TRIBUTARY_CONFIG"]
	if c := flags["config"]; len(c) > 0 {
		cfgPath = c[len(c)-1]
	}
	if cfgPath == "" {
		n.cfg = configCheck(t, os.DevNull)
	} else if m, ok := mountAt(mounts, cfgPath); !ok || m.named || m.target != cfgPath {
		t.Errorf("%s: --config %s is not a file of the repository mounted there", where, cfgPath)
	} else {
		n.cfg = configCheck(t, m.source)
	}
	listen := asString(dig(n.cfg, "http", "listen"))
	if h := flags["http"]; len(h) > 0 {
		listen = h[len(h)-1]
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != apiPort {
		t.Errorf("%s: the API listens on %q: want port %s", where, listen, apiPort)
	}
	if ip := net.ParseIP(host); host != "" && (ip == nil || !ip.IsUnspecified()) {
		t.Errorf("%s: the API listens on %q inside the container: publishing it needs 0.0.0.0", where, listen)
	}
	n.apiPort = port
	// The token: a secret file the node and `docker compose exec ... tributary` read.
	tokenFile := n.env[tnode.TokenFileEnv]
	if tokenFile == "" {
		t.Errorf("%s: no %s: the API token would live only in the volume", where, tnode.TokenFileEnv)
	} else if !composeSecretAt(t, cf, where, s, tokenFile) {
		t.Errorf("%s: %s=%s is not one of the service's secrets", where, tnode.TokenFileEnv, tokenFile)
	}
	// NATS: every URL is a NATS service of this file.
	urls := asStrings(dig(n.cfg, "nats", "urls"))
	if u := flags["nats"]; len(u) > 0 {
		urls = strings.Split(u[len(u)-1], ",")
	}
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Port() != "4222" {
			t.Errorf("%s: NATS URL %q: want nats://SERVICE:4222", where, raw)
			continue
		}
		if s, ok := cf.services[u.Hostname()]; !ok || !isNATS(s) {
			t.Errorf("%s: NATS URL %q names no NATS service of this file", where, raw)
		}
	}
	return n
}

// mountAt finds the mount holding a path of the container.
func mountAt(mounts []mount, path string) (mount, bool) {
	best, found := mount{}, false
	for _, m := range mounts {
		if path == m.target || strings.HasPrefix(path, strings.TrimSuffix(m.target, "/")+"/") {
			if !found || len(m.target) > len(best.target) {
				best, found = m, true
			}
		}
	}
	return best, found
}

// composeSecretAt reports whether path is where one of the service's
// secrets appears, and checks that secret's file stays out of git.
func composeSecretAt(t *testing.T, cf composeFile, where string, s map[string]any, path string) bool {
	t.Helper()
	for _, sec := range asList(s["secrets"]) {
		source, target := asString(sec), ""
		if long := asMap(sec); long != nil {
			source, target = asString(long["source"]), asString(long["target"])
		}
		if target == "" {
			target = source
		}
		if !strings.HasPrefix(target, "/") {
			target = "/run/secrets/" + target
		}
		if target != path {
			continue
		}
		file := asString(dig(cf.secrets, source, "file"))
		if file == "" {
			t.Errorf("%s: secret %q is not a file declared under secrets:", where, source)
			return true
		}
		abs := filepath.Join(cf.dir, file)
		ignore := readFile(t, filepath.Join(filepath.Dir(abs), ".gitignore"))
		if !strings.Contains("\n"+ignore+"\n", "\n*\n") {
			t.Errorf("%s: secret file %s is not in a directory git ignores", where, file)
		}
		return true
	}
	return false
}

// natsConf loads a NATS server config the way nats-server does, with env
// set for its $VARIABLES.
func natsConf(t *testing.T, path string, env map[string]string) *server.Options {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	opts, err := server.ProcessConfigFile(path)
	if err != nil {
		t.Fatalf("nats-server config %s: %v", path, err)
	}
	return opts
}

// natsService checks a NATS service: its config (if any) loads, and it
// runs JetStream.
func natsService(t *testing.T, cf composeFile, where string, s map[string]any, mounts []mount) {
	t.Helper()
	cmd := asStrings(s["command"])
	js := contains(cmd, "-js") || contains(cmd, "--jetstream")
	for i, a := range cmd {
		if (a == "-c" || a == "--config") && i+1 < len(cmd) {
			m, ok := mountAt(mounts, cmd[i+1])
			if !ok || m.named {
				t.Errorf("%s: NATS config %s is not a file of the repository", where, cmd[i+1])
				continue
			}
			opts := natsConf(t, m.source, serviceEnv(s))
			js = js || opts.JetStream
		}
	}
	if !js {
		t.Errorf("%s: NATS without JetStream: peers that are away would miss changes", where)
	}
}

// TestDeployComposeNATSCluster: nats-cluster.yml is three NATS servers
// with JetStream, routed to each other, and Tributary nodes whose config
// lists all three and keeps three replicas.
func TestDeployComposeNATSCluster(t *testing.T) {
	var cf composeFile
	for _, f := range composeFiles(t) {
		if filepath.Base(f.path) == "nats-cluster.yml" {
			cf = f
		}
	}
	if cf.path == "" {
		t.Fatal("no deploy/compose/nats-cluster.yml")
	}
	img := dockerImage(t)
	var servers []string
	names := map[string]bool{}
	routes := map[string][]string{}
	for _, name := range cf.names() {
		s := cf.services[name]
		if !isNATS(s) {
			continue
		}
		servers = append(servers, name)
		cmd := asStrings(s["command"])
		mounts := cf.mounts(t, name, s)
		var opts *server.Options
		for i, a := range cmd {
			if a == "-c" && i+1 < len(cmd) {
				if m, ok := mountAt(mounts, cmd[i+1]); ok {
					opts = natsConf(t, m.source, serviceEnv(s))
				}
			}
		}
		if opts == nil {
			t.Fatalf("%s: no NATS config file", name)
		}
		if !opts.JetStream || opts.Cluster.Port != 6222 || opts.Cluster.Name == "" {
			t.Errorf("%s: JetStream %v, cluster %q on port %d: want JetStream and a named cluster on 6222", name, opts.JetStream, opts.Cluster.Name, opts.Cluster.Port)
		}
		if opts.ServerName == "" || names[opts.ServerName] {
			t.Errorf("%s: server name %q: want a name of its own", name, opts.ServerName)
		}
		names[opts.ServerName] = true
		var r []string
		for _, u := range opts.Routes {
			r = append(r, u.Host)
		}
		sort.Strings(r)
		routes[name] = r
		if opts.MaxPayload < 4<<20 {
			t.Errorf("%s: max_payload %d: a change may be up to 4 MiB", name, opts.MaxPayload)
		}
	}
	if len(servers) != 3 {
		t.Fatalf("nats-cluster.yml has %d NATS servers, want 3", len(servers))
	}
	var want []string
	for _, s := range servers {
		want = append(want, s+":6222")
	}
	for name, r := range routes {
		if strings.Join(r, " ") != strings.Join(want, " ") {
			t.Errorf("%s routes to %v, want %v", name, r, want)
		}
	}
	nodes := 0
	for _, name := range cf.names() {
		s := cf.services[name]
		if !cf.isTributary(s) {
			continue
		}
		nodes++
		n := composeNode(t, cf, name, s, img, cf.mounts(t, name, s))
		var hosts []string
		for _, u := range asStrings(dig(n.cfg, "nats", "urls")) {
			if pu, err := url.Parse(u); err == nil {
				hosts = append(hosts, pu.Hostname())
			}
		}
		sort.Strings(hosts)
		if strings.Join(hosts, " ") != strings.Join(servers, " ") {
			t.Errorf("%s: nats.urls name %v, want every server %v", name, hosts, servers)
		}
		if r := asString(dig(n.cfg, "nats", "replicas")); r != "3" {
			t.Errorf("%s: nats.replicas %s, want 3", name, r)
		}
	}
	if nodes < 2 {
		t.Errorf("nats-cluster.yml runs %d Tributary nodes", nodes)
	}
}
