package main

import (
	"context"
	"fmt"

	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// startTransports starts the transports the options ask for: NATS with
// --nats, libp2p (startLibp2p) with --p2p/--peer or by default.
func (b *bridge) startTransports(ctx context.Context, bootstrap []string) error {
	if b.opts.NATS != "" {
		t, err := meshnats.New(meshnats.Config{URL: b.opts.NATS, Key: b.home.Key, Logger: b.log.With("transport", "nats")})
		if err != nil {
			return fmt.Errorf("nats %s: %w", b.opts.NATS, err)
		}
		b.transports = append(b.transports, transport{name: "nats", tr: t, stop: t.Close, info: map[string]any{"url": b.opts.NATS}})
	}
	return b.startLibp2p(ctx, bootstrap)
}

// startLibp2p is filled in when the libp2p transport lands.
func (b *bridge) startLibp2p(ctx context.Context, bootstrap []string) error { return nil }
