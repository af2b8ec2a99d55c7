package main

import (
	"context"
	"fmt"

	meshlibp2p "github.com/tributary-sync/tributary/mesh/libp2p"
	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// startTransports starts NATS with --nats, and libp2p unless only NATS
// was asked for.
func (b *bridge) startTransports(ctx context.Context, bootstrap []string) error {
	if b.opts.NATS != "" {
		t, err := meshnats.New(meshnats.Config{URL: b.opts.NATS, Key: b.home.Key, Logger: b.log.With("transport", "nats")})
		if err != nil {
			return fmt.Errorf("nats %s: %w", b.opts.NATS, err)
		}
		b.transports = append(b.transports, transport{name: "nats", tr: t, stop: t.Close, info: map[string]any{"url": b.opts.NATS}})
		if len(b.opts.P2P) == 0 && len(b.opts.Peers) == 0 {
			return nil
		}
	}
	return b.startLibp2p(ctx, bootstrap)
}

func (b *bridge) startLibp2p(ctx context.Context, bootstrap []string) error {
	t, err := meshlibp2p.New(ctx, meshlibp2p.Config{
		Key: b.home.Key, Listen: b.opts.P2P, Bootstrap: append(append([]string{}, b.opts.Peers...), bootstrap...),
		MDNS: b.opts.MDNS, Logger: b.log.With("transport", "libp2p"),
	})
	if err != nil {
		return fmt.Errorf("libp2p: %w", err)
	}
	addrs := t.Addrs()
	b.advertised = addrs
	b.transports = append(b.transports, transport{name: "libp2p", tr: t, stop: t.Close, info: map[string]any{"peer": string(t.ID()), "addrs": addrs}})
	return nil
}
