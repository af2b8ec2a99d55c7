package main

import (
	"bytes"
	"fmt"
	"os"
	"regexp"

	"gopkg.in/yaml.v3"
)

// runConfig is the YAML file of `tributary run --config FILE`:
//
//	p2p: [/ip4/0.0.0.0/tcp/4001]
//	peers: [/ip4/10.0.0.5/tcp/4001/p2p/12D3Koo...]
//	nats: nats://127.0.0.1:4222
//	http: 127.0.0.1:7465
//	sinks:
//	  - name: reports
//	    type: postgres          # postgres | mongodb | neo4j | memory
//	    url: postgres://tributary@127.0.0.1:5432/reports
//	    space: library          # ID, suffix or name; optional with one space
//	    options: {schema: public}
//	    tables: {BookReview: reviews}  # collection -> table (postgres), collection
//	                            # (mongodb) or label (neo4j), for collections the
//	                            # sink has not mapped yet: a mapping never changes
//	    batch_size: 1000
//
// A sink that cannot reach its database when the node starts is retried in
// the background (see `tributary sinks`); a config error stops the node.
type runConfig struct {
	P2P   []string     `yaml:"p2p"`
	Peers []string     `yaml:"peers"`
	NATS  string       `yaml:"nats"`
	HTTP  string       `yaml:"http"`
	Sinks []sinkConfig `yaml:"sinks"`
}

type sinkConfig struct {
	Name      string            `yaml:"name"`
	Type      string            `yaml:"type"`
	URL       string            `yaml:"url"`
	Space     string            `yaml:"space"`
	Options   map[string]string `yaml:"options"`
	Tables    map[string]string `yaml:"tables"`
	BatchSize int               `yaml:"batch_size"`
}

var sinkName = regexp.MustCompile(`^[a-zA-Z0-9_-]{1,63}$`)

// sinkTypes are the sink types run knows.
var sinkTypes = map[string]bool{"postgres": true, "memory": true, "mongodb": true, "neo4j": true}

func loadRunConfig(path string) (*runConfig, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	var cfg runConfig
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("config %s: %w", path, err)
	}
	seen := map[string]bool{}
	for i, s := range cfg.Sinks {
		switch {
		case !sinkName.MatchString(s.Name):
			return nil, fmt.Errorf("config %s: sink %d: name %q: want 1 to 63 letters, digits, '_' or '-'", path, i+1, s.Name)
		case seen[s.Name]:
			return nil, fmt.Errorf("config %s: sink name %q used twice", path, s.Name)
		case !sinkTypes[s.Type]:
			return nil, fmt.Errorf("config %s: sink %s: unknown type %q (postgres, mongodb, neo4j, memory)", path, s.Name, s.Type)
		case s.URL == "" && s.Type != "memory":
			return nil, fmt.Errorf("config %s: sink %s: url is required", path, s.Name)
		case s.BatchSize < 0 || s.BatchSize > 100000:
			return nil, fmt.Errorf("config %s: sink %s: batch_size %d: want 1 to 100000", path, s.Name, s.BatchSize)
		}
		for coll, t := range s.Tables {
			if coll == "" || t == "" {
				return nil, fmt.Errorf("config %s: sink %s: tables: %q: %q: want a collection and a name", path, s.Name, coll, t)
			}
		}
		seen[s.Name] = true
	}
	return &cfg, nil
}
