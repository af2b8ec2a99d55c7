package libp2p_test

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	p2p "github.com/tributary-sync/tributary/mesh/libp2p"
	"github.com/tributary-sync/tributary/mesh/meshtest"
)

// freePort finds a port free for both TCP and UDP on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		l.Close()
		if err == nil {
			u.Close()
			return port
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// Two transports on one host cannot share a listen port: the second one
// fails at start and names the address, whether TCP, QUIC or both clash
// (SO_REUSEPORT would let both bind and split the connections).
func TestListenPortConflict(t *testing.T) {
	for _, tc := range []struct {
		name   string
		listen func(port int) []string
		clash  string
	}{
		{"tcp", func(p int) []string { return []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p)} }, "/tcp/"},
		{"quic", func(p int) []string { return []string{fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p)} }, "/quic-v1"},
		{"tcp-and-quic", func(p int) []string {
			return []string{fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", p), fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", p)}
		}, "/ip4/127.0.0.1/"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port := freePort(t)
			listen := tc.listen(port)
			first := newTransport(t, meshtest.Key(t, 1), listen)
			if len(first.Addrs()) != len(listen) {
				t.Fatalf("first transport listens on %v, want %v", first.Addrs(), listen)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			second, err := p2p.New(ctx, p2p.Config{Key: meshtest.Key(t, 2), Listen: listen, DisableNATPortMap: true})
			if err == nil {
				got := second.Addrs()
				second.Close()
				t.Fatalf("a second transport started on %v, already used by the first (it listens on %v)", listen, got)
			}
			t.Logf("second transport: %v", err)
			if !strings.Contains(err.Error(), fmt.Sprint(port)) || !strings.Contains(err.Error(), tc.clash) {
				t.Fatalf("the error does not name the address in use (port %d): %v", port, err)
			}
		})
	}
}

func TestDefaultListenPort(t *testing.T) {
	for _, a := range p2p.DefaultListen {
		if !strings.Contains(a, "/7466") {
			t.Fatalf("default listen address %s: want port 7466 (4001 is IPFS's)", a)
		}
	}
}
