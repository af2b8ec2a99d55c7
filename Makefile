# The two set-up commands of the README: `make demo` (main job on embedded
# defaults) and `make test` (the whole suite; CI runs exactly this).
.PHONY: demo test build bench fuzz

demo:
	go run ./cmd/tributary demo

test:
	bash .ci/test

build:
	go build -o bin/tributary ./cmd/tributary

bench:
	go test -run '^$$' -bench . -benchtime 2s ./core/replica/ ./eventstream/
	go test -run '^$$' -bench . -benchtime 3x ./mesh/nats/ ./mesh/libp2p/ ./adapters/...

fuzz:
	go test -run '^$$' -fuzz FuzzDecodeChange -fuzztime 30s ./core/
	go test -run '^$$' -fuzz FuzzBundleDecode -fuzztime 30s ./mesh/bundle/
	go test -run '^$$' -fuzz FuzzParse -fuzztime 30s ./core/schema/
