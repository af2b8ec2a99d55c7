package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	meshlibp2p "github.com/tributary-sync/tributary/mesh/libp2p"
	meshnats "github.com/tributary-sync/tributary/mesh/nats"
)

// startTransports starts NATS when nats.urls is set, and libp2p unless
// libp2p.enabled is false.
func (b *bridge) startTransports(ctx context.Context, bootstrap []string) error {
	if len(b.cfg.NATS.URLs) > 0 {
		t, err := meshnats.New(b.cfg.natsConfig(b.home.Key, b.log.With("transport", "nats")))
		if err != nil {
			// Unreachable now: replication over libp2p and the sinks go on;
			// NATS is retried in the background and /readyz says why not.
			err = fmt.Errorf("nats %s: %w", strings.Join(b.cfg.NATS.URLs, ","), err)
			b.log.Warn("NATS not reachable at start; retrying in the background", "err", err)
			b.mu.Lock()
			b.natsPending = err
			b.mu.Unlock()
			b.bg.Add(1)
			go b.reachNATS(ctx)
		} else {
			b.transports = append(b.transports, b.natsTransport(t))
		}
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

func (b *bridge) natsTransport(t *meshnats.Transport) transport {
	return transport{name: "nats", tr: t, stop: t.Close, info: map[string]any{"urls": b.cfg.NATS.URLs}}
}

// reachNATS retries the NATS connection with backoff until it succeeds or
// the node stops, then replicates every open space over it.
func (b *bridge) reachNATS(ctx context.Context) {
	defer b.bg.Done()
	wait := time.Second
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(wait):
		}
		t, err := meshnats.New(b.cfg.natsConfig(b.home.Key, b.log.With("transport", "nats")))
		if err == nil {
			b.log.Info("NATS reached", "urls", b.cfg.NATS.URLs)
			b.addTransport(ctx, b.natsTransport(t))
			return
		}
		err = fmt.Errorf("nats %s: %w", strings.Join(b.cfg.NATS.URLs, ","), err)
		b.mu.Lock()
		b.natsPending = err
		b.mu.Unlock()
		b.log.Warn("NATS still not reachable", "err", err, "retry_in", wait)
		wait = min(2*wait, 30*time.Second)
	}
}
