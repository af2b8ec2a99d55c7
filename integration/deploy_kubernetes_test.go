package integration

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	tnode "github.com/tributary-sync/tributary/cmd/tributary/node"
	"github.com/tributary-sync/tributary/core"
	"github.com/tributary-sync/tributary/mesh"
	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// manifest is a Kubernetes file: its objects.
type manifest struct {
	path string
	objs []map[string]any
}

func manifests(t *testing.T) []manifest {
	t.Helper()
	paths, _ := filepath.Glob(filepath.Join(deployDir, "kubernetes", "*.yaml"))
	if len(paths) < 2 {
		t.Fatalf("found %d Kubernetes files", len(paths))
	}
	var out []manifest
	for _, p := range paths {
		out = append(out, manifest{path: p, objs: yamlDocs(t, p)})
	}
	return out
}

func kindOf(o map[string]any) string { return asString(o["kind"]) }
func nameOf(o map[string]any) string { return asString(dig(o, "metadata", "name")) }

func (m manifest) find(kind, name string) map[string]any {
	for _, o := range m.objs {
		if kindOf(o) == kind && nameOf(o) == name {
			return o
		}
	}
	return nil
}

// pod is a workload's pod template.
type pod struct {
	where    string
	workload map[string]any
	spec     map[string]any
	labels   map[string]any
	claims   map[string]bool // volumeClaimTemplates
	replicas int
}

func (m manifest) pods() []pod {
	var out []pod
	for _, o := range m.objs {
		switch kindOf(o) {
		case "StatefulSet", "Deployment", "DaemonSet", "Job", "ReplicaSet":
		default:
			continue
		}
		p := pod{where: fmt.Sprintf("%s: %s %s", m.path, kindOf(o), nameOf(o)), workload: o,
			spec: asMap(dig(o, "spec", "template", "spec")), labels: asMap(dig(o, "spec", "template", "metadata", "labels")),
			claims: map[string]bool{}, replicas: 1}
		if r, ok := dig(o, "spec", "replicas").(int); ok {
			p.replicas = r
		}
		for _, c := range asList(dig(o, "spec", "volumeClaimTemplates")) {
			p.claims[nameOf(asMap(c))] = true
		}
		out = append(out, p)
	}
	return out
}

// containers are the pod's init and main containers.
func (p pod) containers() (inits, mains []map[string]any) {
	for _, c := range asList(p.spec["initContainers"]) {
		inits = append(inits, asMap(c))
	}
	for _, c := range asList(p.spec["containers"]) {
		mains = append(mains, asMap(c))
	}
	return inits, mains
}

func isTributaryImage(c map[string]any) bool {
	return strings.HasPrefix(asString(c["image"]), "tributary")
}

// volume is the pod volume a container path lies on, and the path inside it.
func (p pod) volume(c map[string]any, file string) (vol map[string]any, name, rel string, ok bool) {
	best := ""
	for _, vm := range asList(c["volumeMounts"]) {
		mp := asString(dig(vm, "mountPath"))
		if (file == mp || strings.HasPrefix(file, strings.TrimSuffix(mp, "/")+"/")) && len(mp) > len(best) {
			best, name = mp, asString(dig(vm, "name"))
		}
	}
	if best == "" {
		return nil, "", "", false
	}
	rel = strings.TrimPrefix(strings.TrimPrefix(file, best), "/")
	if p.claims[name] {
		return map[string]any{"persistentVolumeClaim": map[string]any{"claimName": name}}, name, rel, true
	}
	for _, v := range asList(p.spec["volumes"]) {
		if asString(dig(v, "name")) == name {
			return asMap(v), name, rel, true
		}
	}
	return nil, name, rel, false
}

// itemKey maps a file of a ConfigMap or Secret volume to its key.
func itemKey(source map[string]any, rel string) string {
	for _, it := range asList(source["items"]) {
		if asString(dig(it, "path")) == rel {
			return asString(dig(it, "key"))
		}
	}
	return rel
}

// portNumber resolves a probe's or Service's port (a number or a name).
func portNumber(c map[string]any, port any) string {
	if n, ok := port.(int); ok {
		return strconv.Itoa(n)
	}
	for _, p := range asList(c["ports"]) {
		if asString(dig(p, "name")) == asString(port) {
			return asString(dig(p, "containerPort"))
		}
	}
	return asString(port)
}

// secretValues are the made-up values of the Secrets the manifests expect
// to exist ("name/key"), shared by every check and run of one test.
type secretValues map[string]string

func (s secretValues) get(name, key string) string {
	k := name + "/" + key
	if _, ok := s[k]; !ok {
		var b [24]byte
		rand.Read(b[:])
		s[k] = "t" + hex.EncodeToString(b[:])
	}
	return s[k]
}

// envValue resolves a container env entry as the kubelet would.
func envValue(e map[string]any, podName string, secrets secretValues) (string, bool) {
	if v, ok := e["value"]; ok {
		return asString(v), true
	}
	if ref := asMap(dig(e, "valueFrom", "secretKeyRef")); ref != nil {
		return secrets.get(asString(ref["name"]), asString(ref["key"])), true
	}
	if f := asString(dig(e, "valueFrom", "fieldRef", "fieldPath")); f == "metadata.name" {
		return podName, true
	}
	return "", false
}

// tributaryPod is what a manifest gives a Tributary container.
type tributaryPod struct {
	pod       pod
	container map[string]any
	args      []string
	env       map[string]string
	cfg       map[string]any
	cfgText   string
	secretEnv map[string]string // variable -> "secret/key"
}

// TestDeployKubernetes: the API is never exposed outside the cluster; each
// Tributary container runs commands the binary takes as the image's
// numeric user, survives an empty volume, is probed on /healthz and
// /readyz, reads its token from a Secret, and loads a config that passes
// `tributary config check`.
func TestDeployKubernetes(t *testing.T) {
	img := dockerImage(t)
	secrets := secretValues{}
	found := 0
	for _, m := range manifests(t) {
		checkNotExposed(t, m)
		for _, p := range m.pods() {
			inits, mains := p.containers()
			for _, c := range mains {
				if !isTributaryImage(c) {
					continue
				}
				found++
				tp := tributaryContainer(t, m, p, c, inits, img, secrets)
				checkServiceNames(t, m, tp)
				checkNATSUse(t, m, tp, secrets)
			}
		}
	}
	if found < 2 {
		t.Fatalf("found %d Tributary containers in deploy/kubernetes", found)
	}
}

// checkNotExposed: no LoadBalancer or NodePort Service, hostPort, host
// network or Ingress reaches the API port.
func checkNotExposed(t *testing.T, m manifest) {
	t.Helper()
	for _, o := range m.objs {
		where := fmt.Sprintf("%s: %s %s", m.path, kindOf(o), nameOf(o))
		switch kindOf(o) {
		case "Ingress", "HTTPRoute", "Route", "IngressRoute":
			t.Errorf("%s: the API must stay inside the cluster", where)
		case "Service":
			typ := asString(dig(o, "spec", "type"))
			for _, port := range asList(dig(o, "spec", "ports")) {
				p, target := asString(dig(port, "port")), asString(dig(port, "targetPort"))
				api := p == apiPort || target == apiPort || target == "http"
				if api && (typ == "LoadBalancer" || typ == "NodePort" || dig(o, "spec", "externalIPs") != nil) {
					t.Errorf("%s: a %s Service exposes the API (%v)", where, typ, port)
				}
			}
		}
	}
	for _, p := range m.pods() {
		if p.spec["hostNetwork"] == true {
			t.Errorf("%s: hostNetwork puts the API on the node's address", p.where)
		}
		_, mains := p.containers()
		for _, c := range mains {
			for _, port := range asList(c["ports"]) {
				if dig(port, "hostPort") != nil && asString(dig(port, "containerPort")) == apiPort {
					t.Errorf("%s: hostPort on the API port", p.where)
				}
			}
		}
	}
}

func tributaryContainer(t *testing.T, m manifest, p pod, c map[string]any, inits []map[string]any, img image, secrets secretValues) tributaryPod {
	t.Helper()
	where := p.where + " container " + asString(c["name"])
	tp := tributaryPod{pod: p, container: c, env: map[string]string{}, secretEnv: map[string]string{}}
	tp.args = argvOf(t, where, c, img)
	path, flags := invocation{where: where, args: tp.args}.parse(t)
	if strings.Join(path, " ") != "run" {
		t.Fatalf("%s runs tributary %v, want run", where, path)
	}
	for k, v := range img.env {
		tp.env[k] = v
	}
	podName := nameOf(p.workload) + "-0"
	for _, e := range asList(c["env"]) {
		name := asString(dig(e, "name"))
		checkEnv(t, where, name)
		v, ok := envValue(asMap(e), podName, secrets)
		if !ok {
			t.Errorf("%s: env %s has no value this test can resolve", where, name)
		}
		tp.env[name] = v
		if ref := asMap(dig(e, "valueFrom", "secretKeyRef")); ref != nil {
			tp.secretEnv[name] = asString(ref["name"]) + "/" + asString(ref["key"])
		}
	}
	// Security: the image's numeric user, never root.
	sc := asMap(p.spec["securityContext"])
	csc := asMap(c["securityContext"])
	pick := func(k string) string {
		if v, ok := csc[k]; ok {
			return asString(v)
		}
		return asString(sc[k])
	}
	if pick("runAsNonRoot") != "true" || pick("runAsUser") != img.uid || (img.gid != "" && pick("runAsGroup") != img.gid) {
		t.Errorf("%s: runAsNonRoot %s, runAsUser %s, runAsGroup %s: want true and the image's %s:%s", where,
			pick("runAsNonRoot"), pick("runAsUser"), pick("runAsGroup"), img.uid, img.gid)
	}
	if asString(sc["fsGroup"]) == "" {
		t.Errorf("%s: no fsGroup: the volume would not be writable by the node's user", where)
	}
	// The home on a persistent volume, created there on first start.
	home := tp.env["TRIBUTARY_HOME"]
	if vol, _, _, ok := p.volume(c, home); !ok || vol["persistentVolumeClaim"] == nil {
		t.Errorf("%s: the home %s is not on a persistent volume", where, home)
	}
	_, hasInit := flags["init"]
	for _, ic := range inits {
		if isTributaryImage(ic) {
			if ip, _ := (invocation{where: where + " init container", args: argvOf(t, where, ic, img)}).parse(t); strings.Join(ip, " ") == "init" {
				hasInit = true
			}
		}
	}
	if !hasInit {
		t.Errorf("%s: neither run --init nor an init container running `tributary init`: an empty volume crash-loops", where)
	}
	// Probes: no token needed, on the API's port.
	for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/readyz", "startupProbe": ""} {
		pr := asMap(c[probe])
		if pr == nil {
			if want != "" {
				t.Errorf("%s: no %s", where, probe)
			}
			continue
		}
		got := asString(dig(pr, "httpGet", "path"))
		if want != "" && got != want || want == "" && got != "/healthz" && got != "/readyz" {
			t.Errorf("%s: %s on %q, want %q", where, probe, got, want)
		}
		if port := portNumber(c, dig(pr, "httpGet", "port")); port != apiPort {
			t.Errorf("%s: %s on port %s, want the API's %s", where, probe, port, apiPort)
		}
	}
	// The token: a file of a Secret volume.
	if file := tp.env[tnode.TokenFileEnv]; file == "" {
		t.Errorf("%s: no %s: clients could not be given the token", where, tnode.TokenFileEnv)
	} else if vol, _, rel, ok := p.volume(c, file); !ok || dig(vol, "secret", "secretName") == nil {
		t.Errorf("%s: %s=%s is not a file of a Secret volume", where, tnode.TokenFileEnv, file)
	} else {
		name := asString(dig(vol, "secret", "secretName"))
		key := itemKey(asMap(vol["secret"]), rel)
		if s := m.find("Secret", name); s != nil && (s["data"] != nil || s["stringData"] != nil) {
			t.Errorf("%s: Secret %s is written in the manifest: a token there is no secret (create it with kubectl)", where, name)
		}
		tp.secretEnv[tnode.TokenFileEnv] = name + "/" + key
	}
	// The config: a file of a ConfigMap volume that passes config check.
	cfgPath := tp.env["TRIBUTARY_CONFIG"]
	if c := flags["config"]; len(c) > 0 {
		cfgPath = c[len(c)-1]
	}
	if vol, _, rel, ok := p.volume(c, cfgPath); cfgPath == "" || !ok || dig(vol, "configMap", "name") == nil {
		t.Errorf("%s: config %q is not a file of a ConfigMap volume", where, cfgPath)
	} else {
		cmName := asString(dig(vol, "configMap", "name"))
		cm := m.find("ConfigMap", cmName)
		tp.cfgText = asString(dig(cm, "data", itemKey(asMap(vol["configMap"]), rel)))
		if tp.cfgText == "" {
			t.Errorf("%s: ConfigMap %s in %s has no %s", where, cmName, m.path, rel)
		} else {
			tp.cfg = configCheckText(t, nameOf(p.workload)+"-"+rel, tp.cfgText)
		}
	}
	listen := asString(dig(tp.cfg, "http", "listen"))
	if h := flags["http"]; len(h) > 0 {
		listen = h[len(h)-1]
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil || port != apiPort || (host != "" && !net.ParseIP(host).IsUnspecified()) {
		t.Errorf("%s: the API listens on %q: want 0.0.0.0:%s (probes come to the pod's address)", where, listen, apiPort)
	}
	return tp
}

// argvOf is what a container runs after `tributary`.
func argvOf(t *testing.T, where string, c map[string]any, img image) []string {
	t.Helper()
	command, args := asStrings(c["command"]), asStrings(c["args"])
	if len(command) > 0 {
		if filepath.Base(command[0]) != "tributary" {
			t.Fatalf("%s: command %v does not run tributary", where, command)
		}
		return append(command[1:], args...)
	}
	if c["args"] == nil {
		return img.cmd
	}
	return args
}

// checkServiceNames: a ClusterIP Service that in-cluster clients reach
// the API by is one of the node's http.names (else the API refuses their
// Host).
func checkServiceNames(t *testing.T, m manifest, tp tributaryPod) {
	t.Helper()
	names := asStrings(dig(tp.cfg, "http", "names"))
	for _, o := range m.objs {
		if kindOf(o) != "Service" || asString(dig(o, "spec", "clusterIP")) == "None" {
			continue
		}
		if !selects(asMap(dig(o, "spec", "selector")), tp.pod.labels) {
			continue
		}
		for _, port := range asList(dig(o, "spec", "ports")) {
			if portNumber(tp.container, dig(port, "targetPort")) == apiPort && !contains(names, nameOf(o)) {
				t.Errorf("%s: Service %s reaches the API but is not in http.names %v", tp.pod.where, nameOf(o), names)
			}
		}
	}
}

func selects(selector, labels map[string]any) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if asString(labels[k]) != asString(v) {
			return false
		}
	}
	return true
}

// natsCluster is a StatefulSet of NATS servers in a manifest.
type natsCluster struct {
	pod         pod
	container   map[string]any
	conf        string // the ConfigMap's nats.conf
	serviceName string
}

func (m manifest) natsClusters(t *testing.T) []natsCluster {
	t.Helper()
	var out []natsCluster
	for _, p := range m.pods() {
		_, mains := p.containers()
		for _, c := range mains {
			if !strings.HasPrefix(asString(c["image"]), "nats") {
				continue
			}
			nc := natsCluster{pod: p, container: c, serviceName: asString(dig(p.workload, "spec", "serviceName"))}
			args := asStrings(c["args"])
			for i, a := range args {
				if (a == "-c" || a == "--config") && i+1 < len(args) {
					vol, _, rel, ok := p.volume(c, args[i+1])
					if !ok || dig(vol, "configMap", "name") == nil {
						t.Fatalf("%s: NATS config %s is not on a ConfigMap volume", p.where, args[i+1])
					}
					nc.conf = asString(dig(m.find("ConfigMap", asString(dig(vol, "configMap", "name"))), "data", itemKey(asMap(vol["configMap"]), rel)))
				}
			}
			if nc.conf == "" {
				t.Fatalf("%s: NATS runs without a config file from a ConfigMap", p.where)
			}
			out = append(out, nc)
		}
	}
	return out
}

// host is the DNS name of server i in the namespace.
func (nc natsCluster) host(i int) string {
	return fmt.Sprintf("%s-%d.%s", nameOf(nc.pod.workload), i, nc.serviceName)
}

// options loads server i's config as nats-server would, with its env.
func (nc natsCluster) options(t *testing.T, i int, secrets secretValues) *server.Options {
	t.Helper()
	env := map[string]string{}
	podName := fmt.Sprintf("%s-%d", nameOf(nc.pod.workload), i)
	for _, e := range asList(nc.container["env"]) {
		v, _ := envValue(asMap(e), podName, secrets)
		env[asString(dig(e, "name"))] = v
	}
	p := filepath.Join(t.TempDir(), "nats.conf")
	if err := os.WriteFile(p, []byte(nc.conf), 0o600); err != nil {
		t.Fatal(err)
	}
	return natsConf(t, p, env)
}

// TestDeployKubernetesNATSCluster: the NATS StatefulSet is three JetStream
// servers routed to each other under their stable names, with probes on
// their monitoring port.
func TestDeployKubernetesNATSCluster(t *testing.T) {
	secrets := secretValues{}
	clusters := 0
	for _, m := range manifests(t) {
		for _, nc := range m.natsClusters(t) {
			clusters++
			where := nc.pod.where
			if nc.pod.replicas != 3 {
				t.Errorf("%s: %d replicas, want 3", where, nc.pod.replicas)
			}
			svc := m.find("Service", nc.serviceName)
			if svc == nil || asString(dig(svc, "spec", "clusterIP")) != "None" || dig(svc, "spec", "publishNotReadyAddresses") != true {
				t.Errorf("%s: serviceName %q: want a headless Service publishing not-ready addresses (the routes resolve before the servers are ready)", where, nc.serviceName)
			}
			var want []string
			for i := range nc.pod.replicas {
				want = append(want, nc.host(i)+":6222")
			}
			names := map[string]bool{}
			for i := range nc.pod.replicas {
				opts := nc.options(t, i, secrets)
				if !opts.JetStream || opts.Cluster.Port != 6222 || opts.Cluster.Name == "" {
					t.Errorf("%s: server %d: JetStream %v, cluster %q on %d: want JetStream and a named cluster on 6222", where, i, opts.JetStream, opts.Cluster.Name, opts.Cluster.Port)
				}
				if names[opts.ServerName] || opts.ServerName == "" {
					t.Errorf("%s: server %d is named %q: want a name of its own", where, i, opts.ServerName)
				}
				names[opts.ServerName] = true
				var routes []string
				for _, r := range opts.Routes {
					routes = append(routes, r.Host)
				}
				sort.Strings(routes)
				if strings.Join(routes, " ") != strings.Join(want, " ") {
					t.Errorf("%s: server %d routes to %v, want %v", where, i, routes, want)
				}
				if opts.MaxPayload < 4<<20 {
					t.Errorf("%s: max_payload %d: a change may be up to 4 MiB", where, opts.MaxPayload)
				}
				if len(opts.Users) == 0 && len(opts.Nkeys) == 0 && opts.Authorization == "" && opts.AccountResolver == nil {
					t.Errorf("%s: NATS accepts anyone: give Tributary's nodes credentials", where)
				}
			}
			for probe, want := range map[string]string{"livenessProbe": "/healthz", "readinessProbe": "/healthz", "startupProbe": "/healthz"} {
				got := asString(dig(nc.container, probe, "httpGet", "path"))
				if !strings.HasPrefix(got, want) || portNumber(nc.container, dig(nc.container, probe, "httpGet", "port")) != "8222" {
					t.Errorf("%s: %s on %q: want %s on the monitoring port 8222", where, probe, got, want)
				}
			}
		}
	}
	if clusters == 0 {
		t.Fatal("no NATS StatefulSet in deploy/kubernetes")
	}
}

// checkNATSUse: a Tributary node on a NATS StatefulSet of the same file
// lists every server, keeps as many replicas, and connects as a user the
// servers know, with the password from the Secret they read, allowed every
// subject mesh/nats needs (Permissions).
func checkNATSUse(t *testing.T, m manifest, tp tributaryPod, secrets secretValues) {
	t.Helper()
	urls := asStrings(dig(tp.cfg, "nats", "urls"))
	if len(urls) == 0 {
		return
	}
	where := tp.pod.where
	var nc *natsCluster
	for _, c := range m.natsClusters(t) {
		if u, err := url.Parse(urls[0]); err == nil && strings.HasPrefix(u.Hostname(), nameOf(c.pod.workload)+"-") {
			nc = &c
		}
	}
	if nc == nil {
		t.Errorf("%s: nats.urls %v name no NATS StatefulSet of %s", where, urls, m.path)
		return
	}
	var want, got []string
	for i := range nc.pod.replicas {
		want = append(want, "nats://"+nc.host(i)+":4222")
	}
	got = append(got, urls...)
	sort.Strings(got)
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("%s: nats.urls %v, want every server %v", where, got, want)
	}
	if r := asString(dig(tp.cfg, "nats", "replicas")); r != strconv.Itoa(nc.pod.replicas) {
		t.Errorf("%s: nats.replicas %s on %d servers", where, r, nc.pod.replicas)
	}
	user := tp.env["TRIBUTARY_NATS_USER"]
	if user == "" {
		user = asString(dig(tp.cfg, "nats", "user"))
	}
	password := tp.env["TRIBUTARY_NATS_PASSWORD"]
	if tp.secretEnv["TRIBUTARY_NATS_PASSWORD"] == "" {
		t.Errorf("%s: the NATS password does not come from a Secret (TRIBUTARY_NATS_PASSWORD from a secretKeyRef)", where)
	}
	opts := nc.options(t, 0, secrets)
	var u *server.User
	for _, x := range opts.Users {
		if x.Username == user {
			u = x
		}
	}
	if u == nil || u.Password != password {
		t.Errorf("%s: connects as NATS user %q with the Secret's password; the servers know no such user with it", where, user)
		return
	}
	if u.Permissions == nil || u.Permissions.Publish == nil || u.Permissions.Subscribe == nil {
		t.Errorf("%s: NATS user %q may use every subject: give it Tributary's only (mesh/nats/doc.go)", where, user)
		return
	}
	key, err := core.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	need := meshnats.Permissions(core.IDOf([]byte("a space")), mesh.PeerOf(key.Public()), true)
	for _, s := range need.Publish {
		if !allowed(u.Permissions.Publish, s) {
			t.Errorf("%s: NATS user %q may not publish %s, which a member needs", where, user, s)
		}
	}
	for _, s := range need.Subscribe {
		if !allowed(u.Permissions.Subscribe, s) {
			t.Errorf("%s: NATS user %q may not subscribe to %s, which a member needs", where, user, s)
		}
	}
}

// allowed: a subject (possibly with wildcards) is covered by the allow
// list and by no deny.
func allowed(p *server.SubjectPermission, subject string) bool {
	for _, d := range p.Deny {
		if covers(d, subject) || covers(subject, d) {
			return false
		}
	}
	for _, a := range p.Allow {
		if covers(a, subject) {
			return true
		}
	}
	return len(p.Allow) == 0
}

// covers: every subject matching sub matches pattern.
func covers(pattern, sub string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(sub, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || s[i] == ">" {
			return false
		}
		if tok != "*" && (tok != s[i] || s[i] == "*") {
			return false
		}
	}
	return len(p) == len(s)
}
