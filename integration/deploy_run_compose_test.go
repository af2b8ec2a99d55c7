package integration

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// fromService builds a compose service's container: named volumes are
// empty directories, bind-mounted configs are the repository's files
// (network names mapped), secrets are made-up files.
func fromService(t *testing.T, cf composeFile, name string, img image, hosts map[string]string, secrets secretValues) *container {
	t.Helper()
	s := cf.services[name]
	ct := newContainer(cf.path+": "+name, hosts)
	root := t.TempDir()
	for _, m := range cf.mounts(t, name, s) {
		if m.named {
			dir := filepath.Join(root, "volume-"+m.source)
			if err := os.MkdirAll(dir, 0o700); err != nil {
				t.Fatal(err)
			}
			ct.mounts[m.target] = dir
			continue
		}
		switch filepath.Ext(m.source) {
		case ".yaml", ".yml", ".conf":
			dst := filepath.Join(root, "bind-"+filepath.Base(m.source))
			if err := os.WriteFile(dst, []byte(ct.rewriteText(readFile(t, m.source))), 0o644); err != nil {
				t.Fatal(err)
			}
			ct.mounts[m.target] = dst
		default:
			ct.mounts[m.target] = m.source
		}
	}
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
		file := filepath.Join(root, "secret-"+source)
		if err := os.WriteFile(file, []byte(secrets.get("compose", source)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		ct.mounts[target] = file
	}
	for k, v := range img.env {
		ct.env[k] = ct.rewrite(v)
	}
	for k, v := range serviceEnv(s) {
		ct.env[k] = ct.rewrite(v)
	}
	args := asStrings(s["command"])
	if args == nil {
		args = img.cmd
	}
	for _, a := range args {
		ct.args = append(ct.args, ct.rewrite(a))
	}
	return ct
}

// composeNATS are a compose file's NATS services, from their config file
// if they have one, else their flags.
func composeNATS(t *testing.T, cf composeFile) []natsServer {
	t.Helper()
	var out []natsServer
	for _, name := range cf.names() {
		s := cf.services[name]
		if !isNATS(s) {
			continue
		}
		cmd := asStrings(s["command"])
		opts := &server.Options{JetStream: contains(cmd, "-js")}
		for i, a := range cmd {
			if a == "-c" && i+1 < len(cmd) {
				if m, ok := mountAt(cf.mounts(t, name, s), cmd[i+1]); ok {
					opts = natsConf(t, m.source, serviceEnv(s))
				}
			}
		}
		readiness := ""
		for _, w := range asStrings(dig(s, "healthcheck", "test")) {
			if i := strings.Index(w, ":8222/"); i >= 0 {
				readiness = w[i+5:]
			}
		}
		out = append(out, natsServer{host: name, opts: opts, readiness: readiness})
	}
	return out
}

// composeStep is a command a compose file's comments tell users to run:
// `docker compose exec SERVICE tributary ARGS` in the running service, or
// `docker compose run --rm SERVICE ARGS` in a fresh container of it before
// the services are up (the image's entrypoint is tributary).
type composeStep struct {
	service string
	args    []string
	before  bool
}

var composeExec = regexp.MustCompile(`docker compose(?: -f (\S+))? (?:exec (\S+) tributary|run --rm(?: --no-deps)? (\S+)) (.*)$`)

func composeSteps(t *testing.T, cf composeFile) []composeStep {
	t.Helper()
	var out []composeStep
	for _, line := range strings.Split(readFile(t, cf.path), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(line), "#") {
			continue
		}
		m := composeExec.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		if file := m[1]; file != "" && file != filepath.Base(cf.path) || file == "" && filepath.Base(cf.path) != "docker-compose.yml" {
			t.Errorf("%s: step %q runs against another compose file", cf.path, strings.TrimSpace(line))
			continue
		}
		st := composeStep{service: m[2], args: shellWords(m[4])}
		if m[3] != "" {
			st.service, st.before = m[3], true
			if len(out) > 0 && !out[len(out)-1].before {
				t.Errorf("%s: step %q runs in a fresh container after the services are up", cf.path, strings.TrimSpace(line))
			}
		}
		out = append(out, st)
	}
	return out
}

// founder makes a space in a home of its own, outside the compose file,
// and returns an invite code to it: for a file whose steps join a space
// founded elsewhere.
func founder(t *testing.T) string {
	t.Helper()
	home := t.TempDir()
	schema, err := filepath.Abs(filepath.Join(repoDir, "cmd", "tributary", "demo_schema.graphql"))
	if err != nil {
		t.Fatal(err)
	}
	mustCLI(t, home, nil, "init")
	mustCLI(t, home, nil, "space", "create", "--name", "library", "--schema", schema)
	var inv struct{ Code string }
	mustCLI(t, home, &inv, "invite")
	if inv.Code == "" {
		t.Fatal("tributary invite --json printed no code")
	}
	return inv.Code
}

// TestDeployRunCompose: each compose file's Tributary services start as
// the file starts them (run --init on an empty volume, the secret token,
// the mounted config, NATS by service name) after the steps its comments
// give for a fresh container (a join), answer their health check and the
// API with the token, and the steps for the running services run in
// order: a space is founded, an invite used, and a document written on the
// founder's node reaches the joiner's. A node whose sinks' databases are
// not run here says so on /readyz, naming each sink.
func TestDeployRunCompose(t *testing.T) {
	img := dockerImage(t)
	for _, cf := range composeFiles(t) {
		t.Run(filepath.Base(cf.path), func(t *testing.T) {
			secrets := secretValues{}
			hosts := map[string]string{}
			if specs := composeNATS(t, cf); len(specs) > 0 {
				hosts = startNATS(t, specs)
			}
			nodes := map[string]*container{}
			for _, name := range cf.names() {
				if cf.isTributary(cf.services[name]) {
					nodes[name] = fromService(t, cf, name, img, hosts, secrets)
				}
			}
			steps := composeSteps(t, cf)
			if len(steps) == 0 {
				t.Fatalf("%s shows no `docker compose exec` step", cf.path)
			}
			code, founded, joiner := "", "", ""
			started := false
			for _, st := range steps {
				c := nodes[st.service]
				if c == nil {
					t.Fatalf("%s: a step runs in %q, no Tributary service", cf.path, st.service)
				}
				if !st.before && !started {
					startCompose(t, cf, nodes)
					started = true
				}
				if contains(st.args, "CODE") {
					if code == "" {
						code = founder(t) // an admin's of a space founded elsewhere
					}
					st.args = replaceWord(st.args, "CODE", code)
					joiner = st.service
				}
				out := c.exec(t, nil, st.args...)
				switch st.args[0] {
				case "invite":
					code = strings.TrimSpace(out)
				case "space":
					founded = st.service
				}
			}
			if !started {
				startCompose(t, cf, nodes)
			}
			if joiner == "" {
				t.Fatalf("%s: no step joins a space", cf.path)
			}
			if out := nodes[joiner].exec(t, nil, "--json", "space", "list"); !strings.Contains(out, "library") {
				t.Errorf("%s: after the steps %s holds no space: %s", cf.path, joiner, out)
			}
			if founded == "" {
				return
			}
			nodes[founded].exec(t, nil, "put", "--id", "le-guin", "Author", `{"name": "Ursula K. Le Guin"}`)
			eventually(t, 90*time.Second, "the document reaches "+joiner, func() bool {
				cmd := exec.Command(bin, "--json", "get", "Author", "le-guin")
				cmd.Env = nodes[joiner].environ()
				out, err := cmd.Output()
				return err == nil && strings.Contains(string(out), "Le Guin")
			})
			if asString(dig(nodes[founded].config(t), "nats", "replicas")) == "3" {
				var spaces []struct{ Space string }
				if err := json.Unmarshal([]byte(nodes[founded].exec(t, nil, "--json", "space", "list")), &spaces); err != nil || len(spaces) != 1 {
					t.Fatalf("%s: space list: %v %v", founded, spaces, err)
				}
				checkStream(t, cf.path, nodes[founded], spaces[0].Space)
			}
		})
	}
}

// startCompose starts the Tributary services (`docker compose up`) and
// probes each: a node with database sinks reports them not ready, the
// databases being absent here.
func startCompose(t *testing.T, cf composeFile, nodes map[string]*container) {
	t.Helper()
	for _, name := range cf.names() {
		c := nodes[name]
		if c == nil {
			continue
		}
		var sinks []string
		for _, sc := range asList(c.config(t)["sinks"]) {
			if asString(dig(sc, "type")) != "memory" { // a database's
				sinks = append(sinks, asString(dig(sc, "name")))
			}
		}
		c.start(t).probe(t, token(t, c), sinks...)
	}
}

func replaceWord(words []string, from, to string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = w
		if w == from {
			out[i] = to
		}
	}
	return out
}
