package bench

import (
	"slices"
	"time"
)

// latencies summarises a set of durations.
type latencies struct {
	p50, p99, max time.Duration
}

func summarize(ds []time.Duration) latencies {
	if len(ds) == 0 {
		return latencies{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(s))+0.5) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return latencies{p50: at(0.50), p99: at(0.99), max: s[len(s)-1]}
}

// perSecond is n per elapsed second (0 for no time).
func perSecond(n int, el time.Duration) float64 {
	if el <= 0 {
		return 0
	}
	return float64(n) / el.Seconds()
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
