package main

import (
	"context"
)

// startTransports starts the transports the options ask for. It is filled
// in as the transports land (libp2p, NATS).
func (b *bridge) startTransports(ctx context.Context, bootstrap []string) error {
	return nil
}
