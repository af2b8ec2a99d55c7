package integration

// Nodes started the way the deploy files start them: the container's (or
// unit's) command line, environment, config and secrets, with each mount a
// directory of the test and each service's DNS name an embedded NATS
// server. Only what binds fixed ports is changed: the API and libp2p listen
// on free ports of 127.0.0.1 and mDNS is off (sandbox below).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	tnode "github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// container is a Tributary container (or unit) of a deploy file, as a
// process of this test.
type container struct {
	where  string
	args   []string          // after tributary
	env    map[string]string // TRIBUTARY_* and the like
	mounts map[string]string // path in the container -> path here
	hosts  map[string]string // host:port in the container's network -> 127.0.0.1:port
}

func newContainer(where string, hosts map[string]string) *container {
	return &container{where: where, env: map[string]string{}, mounts: map[string]string{}, hosts: hosts}
}

// rewrite maps container paths and network names in s to this test's.
func (c *container) rewrite(s string) string {
	best := ""
	for mp := range c.mounts {
		if (s == mp || strings.HasPrefix(s, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best = mp
		}
	}
	if best != "" {
		s = c.mounts[best] + strings.TrimPrefix(s, best)
	}
	for from, to := range c.hosts {
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

// sandbox lets the node bind free ports of 127.0.0.1 instead of the fixed
// ones the files give (other tests and services share this machine).
func (c *container) sandbox() {
	for i := 0; i+1 < len(c.args); i++ {
		switch c.args[i] {
		case "--http":
			c.args[i+1] = "127.0.0.1:0"
		case "--p2p":
			c.args[i+1] = regexp.MustCompile(`^/ip4/[^/]+/(tcp|udp)/\d+`).ReplaceAllString(c.args[i+1], "/ip4/127.0.0.1/$1/0")
		}
	}
	c.args = append(c.args, "--mdns=false")
	c.env["TRIBUTARY_HTTP_LISTEN"] = "127.0.0.1:0"
	c.env["TRIBUTARY_LIBP2P_LISTEN"] = "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1"
	c.env["TRIBUTARY_LIBP2P_NAT_PORT_MAP"] = "false"
}

func (c *container) home() string { return c.env["TRIBUTARY_HOME"] }

// environ is the process environment: the container's, nothing of ours.
func (c *container) environ() []string {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + c.home()}
	for k, v := range c.env {
		env = append(env, k+"="+v)
	}
	return env
}

// exec runs `tributary args...` in the container, as `docker compose exec`
// or `kubectl exec` would, and returns its stdout.
func (c *container) exec(t *testing.T, stdin io.Reader, args ...string) string {
	t.Helper()
	args = slices.Clone(args)
	for i, a := range args {
		args[i] = c.rewrite(a) // paths of the container, as it sees them
	}
	cmd := exec.Command(bin, args...)
	cmd.Env, cmd.Stdin = c.environ(), stdin
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s: tributary %s: %v: %s", c.where, strings.Join(args, " "), err, errb.String())
	}
	return out.String()
}

// proc is a running node.
type proc struct {
	c    *container
	addr string
	done chan error
	log  string
}

// start runs the container's command and waits until the node serves.
func (c *container) start(t *testing.T) *proc {
	t.Helper()
	c.sandbox()
	p := &proc{c: c, done: make(chan error, 1), log: filepath.Join(t.TempDir(), "run.log")}
	logf, err := os.Create(p.log)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, c.args...)
	cmd.Env, cmd.Stdout, cmd.Stderr = c.environ(), logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{}) // closed when the process has exited
	go func() { p.done <- cmd.Wait(); logf.Close(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-exited
			t.Errorf("%s did not stop on SIGTERM", c.where)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		if ri, ok := tnode.ReadRunInfo(c.home()); ok && ri.PID == cmd.Process.Pid {
			p.addr = ri.HTTP
			return p
		}
		select {
		case err := <-p.done:
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s: tributary %s exited (%v):\n%s", c.where, strings.Join(c.args, " "), err, b)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(p.log)
			t.Fatalf("%s: the node did not serve within 60s:\n%s", c.where, b)
		}
	}
}

// get asks the node's API, with a token unless it is empty, and returns
// the status and body.
func (p *proc) get(t *testing.T, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+p.addr+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", p.c.where, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// probe checks what the deploy files' probes and clients rely on: the
// health routes answer without a token, the API only with the token the
// node was given. /readyz turns 200, or, when the sinks named are given
// (their databases are not run here), stays 503 naming each of them.
func (p *proc) probe(t *testing.T, token string, unreachableSinks ...string) {
	t.Helper()
	if code, body := p.get(t, "/healthz", ""); code != 200 {
		t.Errorf("%s: /healthz answers %d without a token: %s", p.c.where, code, body)
	}
	if len(unreachableSinks) == 0 {
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			code, body := p.get(t, "/readyz", "")
			if code == 200 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: /readyz answers %d after 30s: %s", p.c.where, code, body)
			}
		}
	} else {
		eventually(t, 60*time.Second, p.c.where+": /readyz answers 503 naming the sinks "+strings.Join(unreachableSinks, ", "), func() bool {
			code, body := p.get(t, "/readyz", "")
			if code != 503 {
				return false
			}
			for _, s := range unreachableSinks {
				if !strings.Contains(body, "sink "+s+":") {
					return false
				}
			}
			return true
		})
	}
	if code, _ := p.get(t, "/v1/spaces", ""); code != 401 {
		t.Errorf("%s: /v1/spaces answers %d without a token, want 401", p.c.where, code)
	}
	for _, path := range []string{"/v1/spaces", "/metrics"} {
		if code, body := p.get(t, path, token); code != 200 {
			t.Errorf("%s: %s answers %d with the secret's token: %s", p.c.where, path, code, body)
		}
	}
}

func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fromPod builds a Kubernetes container: ConfigMap volumes hold the
// manifest's data, Secret volumes the made-up secrets, the others are empty
// directories (an empty persistent volume for the home).
func fromPod(t *testing.T, m manifest, p pod, c map[string]any, img image, secrets secretValues, hosts map[string]string, podName string) *container {
	t.Helper()
	ct := newContainer(p.where+" "+podName, hosts)
	root := t.TempDir()
	type secretMount struct{ dir, name string }
	var secretMounts = map[string]secretMount{}
	for _, vm := range asList(c["volumeMounts"]) {
		name, mp := asString(dig(vm, "name")), asString(dig(vm, "mountPath"))
		dir := filepath.Join(root, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		ct.mounts[mp] = dir
		vol, _, _, _ := p.volume(c, mp)
		if cm := asString(dig(vol, "configMap", "name")); cm != "" {
			for key, text := range asMap(dig(m.find("ConfigMap", cm), "data")) {
				if err := os.WriteFile(filepath.Join(dir, key), []byte(ct.rewriteText(asString(text))), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
		if s := asString(dig(vol, "secret", "secretName")); s != "" {
			secretMounts[mp] = secretMount{dir: dir, name: s}
		}
	}
	for _, e := range asList(c["env"]) {
		v, _ := envValue(asMap(e), podName, secrets)
		ct.env[asString(dig(e, "name"))] = v
	}
	for k, v := range img.env {
		if _, ok := ct.env[k]; !ok {
			ct.env[k] = v
		}
	}
	// A Secret volume holds the keys the container's paths name.
	for _, v := range ct.env {
		for mp, sm := range secretMounts {
			if rel, ok := strings.CutPrefix(v, mp+"/"); ok {
				vol, _, _, _ := p.volume(c, v)
				val := secrets.get(sm.name, itemKey(asMap(vol["secret"]), rel))
				if err := os.WriteFile(filepath.Join(sm.dir, rel), []byte(val+"\n"), 0o440); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	for k, v := range ct.env {
		ct.env[k] = ct.rewrite(v)
	}
	for _, a := range argvOf(t, p.where, c, img) {
		ct.args = append(ct.args, ct.rewrite(a))
	}
	return ct
}

// rewriteText maps network names in a file's text.
func (c *container) rewriteText(s string) string {
	for from, to := range c.hosts {
		s = strings.ReplaceAll(s, from, to)
	}
	return s
}

// natsServer is a NATS server of a deploy file: its options as loaded
// from its config, and the host name clients reach it by.
type natsServer struct {
	host      string
	opts      *server.Options
	readiness string // its readiness probe's path, if any
}

// startNATS runs a deploy file's NATS servers here, each on free ports of
// 127.0.0.1 (routed to each other when they form a cluster), and maps
// their host names to them. Users, permissions, JetStream and limits are
// the files'.
func startNATS(t *testing.T, specs []natsServer) map[string]string {
	t.Helper()
	n := len(specs)
	client, cluster := freeTCPPorts(t, n), freeTCPPorts(t, n)
	var routes []string
	for _, p := range cluster {
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
	}
	hosts := map[string]string{}
	var servers []*server.Server
	clustered := false
	for i, sp := range specs {
		o := sp.opts
		o.Host, o.Port = "127.0.0.1", client[i]
		o.HTTPHost, o.HTTPPort = "127.0.0.1", -1
		if o.Cluster.Port != 0 {
			clustered = true
			o.Cluster.Host, o.Cluster.Port = "127.0.0.1", cluster[i]
			o.Routes = server.RoutesFromStr(strings.Join(routes, ","))
		}
		o.StoreDir, o.NoLog, o.NoSigs = t.TempDir(), true, true
		s, err := server.NewServer(o)
		if err != nil {
			t.Fatalf("nats server %s: %v", sp.host, err)
		}
		go s.Start()
		servers = append(servers, s)
		hosts[sp.host+":4222"] = fmt.Sprintf("127.0.0.1:%d", client[i])
	}
	t.Cleanup(func() {
		for _, s := range servers {
			s.Shutdown()
			s.WaitForShutdown()
		}
	})
	for _, s := range servers {
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
	}
	if clustered {
		eventually(t, 60*time.Second, "the JetStream cluster elects a leader", func() bool {
			for _, s := range servers {
				if s.JetStreamIsLeader() && len(s.JetStreamClusterPeers()) == n {
					return true
				}
			}
			return false
		})
	}
	for i, s := range servers {
		if specs[i].readiness == "" {
			continue
		}
		resp, err := http.Get("http://" + s.MonitorAddr().String() + specs[i].readiness)
		if err != nil || resp.StatusCode != 200 {
			t.Errorf("NATS %s: readiness probe %s: %v %v", specs[i].host, specs[i].readiness, err, resp)
		}
		if resp != nil {
			resp.Body.Close()
		}
	}
	return hosts
}

// manifestNATS are the servers of a manifest's NATS StatefulSet.
func manifestNATS(t *testing.T, nc natsCluster, secrets secretValues) []natsServer {
	t.Helper()
	var out []natsServer
	for i := range nc.pod.replicas {
		out = append(out, natsServer{host: nc.host(i), opts: nc.options(t, i, secrets),
			readiness: asString(dig(nc.container, "readinessProbe", "httpGet", "path"))})
	}
	return out
}

func freeTCPPorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var ls []net.Listener
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	for _, l := range ls {
		l.Close()
	}
	return ports
}

func token(t *testing.T, c *container) string {
	t.Helper()
	b, err := os.ReadFile(c.env[tnode.TokenFileEnv])
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

func jsonField(t *testing.T, out, field string) string {
	t.Helper()
	var v map[string]any
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("not JSON: %q: %v", out, err)
	}
	s := asString(v[field])
	if s == "" {
		t.Fatalf("no %q in %s", field, out)
	}
	return s
}

// TestDeployRunKubernetes: each manifest's Tributary pod starts on an
// empty volume, serves its probes without a token and its API with the
// Secret's, and `kubectl exec ... tributary` works through it. On the NATS
// cluster the documented steps run: a space is founded on one node (schema
// on stdin), a second joins with an invite, and a document written on one
// reaches the other through NATS, whose stream keeps 3 replicas.
func TestDeployRunKubernetes(t *testing.T) {
	img := dockerImage(t)
	schema := filepath.Join(repoDir, "cmd", "tributary", "demo_schema.graphql")
	for _, m := range manifests(t) {
		secrets := secretValues{}
		hosts := map[string]string{}
		for _, nc := range m.natsClusters(t) {
			for k, v := range startNATS(t, manifestNATS(t, nc, secrets)) {
				hosts[k] = v
			}
		}
		for _, p := range m.pods() {
			_, mains := p.containers()
			for _, c := range mains {
				if !isTributaryImage(c) {
					continue
				}
				name := nameOf(p.workload)
				a := fromPod(t, m, p, c, img, secrets, hosts, name+"-0")
				pa := a.start(t)
				pa.probe(t, token(t, a))
				a.exec(t, nil, "--json", "space", "list")
				if len(hosts) == 0 || p.replicas < 2 {
					continue
				}
				b := fromPod(t, m, p, c, img, secrets, hosts, name+"-1")
				pb := b.start(t)
				pb.probe(t, token(t, b))
				f, err := os.Open(schema)
				if err != nil {
					t.Fatal(err)
				}
				space := jsonField(t, a.exec(t, f, "--json", "space", "create", "--name", "library", "--schema", "/dev/stdin"), "space")
				f.Close()
				code := jsonField(t, a.exec(t, nil, "--json", "invite"), "code")
				b.exec(t, nil, "--json", "join", code)
				a.exec(t, nil, "--json", "put", "--id", "le-guin", "Author", `{"name": "Ursula K. Le Guin"}`)
				eventually(t, 90*time.Second, "the document reaches the second node through NATS", func() bool {
					cmd := exec.Command(bin, "--json", "get", "Author", "le-guin")
					cmd.Env = b.environ()
					out, err := cmd.Output()
					return err == nil && strings.Contains(string(out), "Le Guin")
				})
				checkStream(t, m.path, a, space)
			}
		}
	}
}

// checkStream: the space's stream is on the cluster with 3 replicas and
// the space's changes, read as the node's NATS user (if it has one).
func checkStream(t *testing.T, where string, c *container, space string) {
	t.Helper()
	id, err := core.ParseID(space)
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, from := range sortedKeys(c.hosts) {
		urls = append(urls, "nats://"+c.hosts[from])
	}
	var opts []natsgo.Option
	if user := asString(dig(c.config(t), "nats", "user")); user != "" {
		opts = append(opts, natsgo.UserInfo(user, c.env["TRIBUTARY_NATS_PASSWORD"]))
	}
	nc, err := natsgo.Connect(strings.Join(urls, ","), opts...)
	if err != nil {
		t.Fatalf("%s: connect as the node's NATS user: %v", where, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, meshnats.StreamName(id))
	if err != nil {
		t.Fatalf("stream of the space: %v", err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: stream %s: %d replicas, %d changes", where, info.Config.Name, info.Config.Replicas, info.State.Msgs)
	if info.Config.Replicas != 3 || info.State.Msgs < 2 {
		t.Errorf("%s: stream %s keeps %d replicas and %d changes, want 3 and the space's changes", where, info.Config.Name, info.Config.Replicas, info.State.Msgs)
	}
}

func sortedKeys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// config is the config the container's node loads (defaults filled in).
func (c *container) config(t *testing.T) map[string]any {
	t.Helper()
	path := c.env["TRIBUTARY_CONFIG"]
	for i, a := range c.args {
		if v, ok := strings.CutPrefix(a, "--config="); ok {
			path = v
		} else if a == "--config" && i+1 < len(c.args) {
			path = c.args[i+1]
		}
	}
	if path == "" {
		path = os.DevNull
	}
	return configCheck(t, path)
}
