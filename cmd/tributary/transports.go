package main

import (
	"context"
	"fmt"
	"strings"

	meshlibp2p "github.com/tributary-sync/tributary/mesh/libp2p"
	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// startTransports starts NATS when nats.urls is set, and libp2p unless
// libp2p.enabled is false.
func (b *bridge) startTransports(ctx context.Context, bootstrap []string) error {
	if len(b.cfg.NATS.URLs) > 0 {
		t, err := meshnats.New(b.cfg.natsConfig(b.home.Key, b.log.With("transport", "nats")))
		if err != nil {
			return fmt.Errorf("nats %s: %w", strings.Join(b.cfg.NATS.URLs, ","), err)
		}
		b.transports = append(b.transports, transport{name: "nats", tr: t, stop: t.Close, info: map[string]any{"urls": b.cfg.NATS.URLs}})
	}
	if !b.cfg.Libp2p.Enabled {
		return nil
	}
	return b.startLibp2p(ctx, bootstrap)
}

func (b *bridge) startLibp2p(ctx context.Context, bootstrap []string) error {
	l := b.cfg.Libp2p
	t, err := meshlibp2p.New(ctx, meshlibp2p.Config{
		Key: b.home.Key, Listen: l.Listen, Bootstrap: append(append([]string{}, l.Peers...), bootstrap...),
		MDNS: l.MDNS, Logger: b.log.With("transport", "libp2p"),
		DisableNATPortMap: !l.NATPortMap, RedialInterval: l.RedialInterval, AdmissionInterval: l.AdmissionInterval,
		RequestTimeout: l.RequestTimeout, ReadTimeout: l.ReadTimeout, MaxFrame: int(l.MaxFrame), MaxPushBytes: int(l.MaxPushBytes),
		ProbationTimeout: l.ProbationTimeout, MaxProbation: l.MaxProbation, ProbationCooloff: l.ProbationCooloff,
	})
	if err != nil {
		return fmt.Errorf("libp2p: %w", err)
	}
	addrs := t.Addrs()
	b.advertised = addrs
	b.transports = append(b.transports, transport{name: "libp2p", tr: t, stop: t.Close, info: map[string]any{"peer": string(t.ID()), "addrs": addrs}})
	return nil
}
