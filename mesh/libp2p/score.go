package libp2p

import (
	"net"
	"time"

	pubsub "github.com/libp2p/go-libp2p-pubsub"
	"github.com/libp2p/go-libp2p/core/peer"
)

// Gossipsub peer scoring. Members are few and known, so the parameters
// punish what matters here: invalid messages (a peer whose message fails
// validation drops below the gossip threshold at once and is banned on
// top) and protocol misbehaviour; time in mesh and first deliveries earn a
// little. Mesh delivery rates are not scored: a quiet space is normal.

var scoreThresholds = &pubsub.PeerScoreThresholds{
	GossipThreshold:             -100,
	PublishThreshold:            -200,
	GraylistThreshold:           -300,
	AcceptPXThreshold:           10,
	OpportunisticGraftThreshold: 5,
}

func scoreParams(banned func(peer.ID) bool) *pubsub.PeerScoreParams {
	var local []*net.IPNet
	for _, cidr := range []string{"127.0.0.0/8", "::1/128"} {
		_, n, _ := net.ParseCIDR(cidr)
		local = append(local, n)
	}
	return &pubsub.PeerScoreParams{
		Topics:        map[string]*pubsub.TopicScoreParams{},
		TopicScoreCap: 50,
		AppSpecificScore: func(p peer.ID) float64 {
			if banned(p) {
				return -1000
			}
			return 0
		},
		AppSpecificWeight:           1,
		IPColocationFactorWeight:    -5,
		IPColocationFactorThreshold: 16, // an office behind one NAT is fine
		IPColocationFactorWhitelist: local,
		BehaviourPenaltyWeight:      -10,
		BehaviourPenaltyThreshold:   6,
		BehaviourPenaltyDecay:       pubsub.ScoreParameterDecay(10 * time.Minute),
		DecayInterval:               time.Second,
		DecayToZero:                 0.01,
		RetainScore:                 30 * time.Minute,
	}
}

func topicScoreParams() *pubsub.TopicScoreParams {
	return &pubsub.TopicScoreParams{
		TopicWeight:                    1,
		TimeInMeshWeight:               0.01,
		TimeInMeshQuantum:              time.Second,
		TimeInMeshCap:                  300,
		FirstMessageDeliveriesWeight:   0.5,
		FirstMessageDeliveriesDecay:    pubsub.ScoreParameterDecay(10 * time.Minute),
		FirstMessageDeliveriesCap:      40,
		InvalidMessageDeliveriesWeight: -200,
		InvalidMessageDeliveriesDecay:  pubsub.ScoreParameterDecay(time.Hour),
	}
}
