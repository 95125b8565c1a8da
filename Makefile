GO ?= go
PKGS := ./...
# Tests need more than the default 10m per package only for the region tests.
TEST_TIMEOUT ?= 20m

.PHONY: run test build proto fuzz bench bench-http bench-sdk bench-region test-long vet clean testnet testnet-soak

# The Prometheus metrics: curl -s $(METRICS_ADDR)/metrics | grep parley_
METRICS_ADDR ?= 127.0.0.1:9464

run: build
	./bin/parley serve --data ./data --metrics $(METRICS_ADDR)

build:
	$(GO) build -o bin/parley ./cmd/parley

test:
	$(GO) vet $(PKGS)
	$(GO) test -race -timeout $(TEST_TIMEOUT) $(PKGS)

# Long tests kept out of make test: a node that was down for 100,000
# entries catches up from a snapshot (a few minutes on 2 cores).
test-long:
	PARLEY_TEST_LONG=1 $(GO) test -count=1 -timeout 30m -run 'TestRegionNodeCatchesUpFromSnapshot' -v ./core/

# Regenerate protobuf code (needs protoc and protoc-gen-go v1.36.12).
proto:
	protoc -I syncproto/proto -I core/internal/cmdpb \
		--go_out=. --go_opt=module=github.com/parley-chat/parley \
		syncproto/proto/parley/v1/*.proto core/internal/cmdpb/command.proto

# Run each fuzz target for FUZZTIME (the corpus is replayed by make test).
FUZZTIME ?= 30s
fuzz:
	@for pkg in $$($(GO) list ./...); do \
		for t in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
			echo "== $$pkg $$t"; $(GO) test -run '^$$' -fuzz "^$$t$$" -fuzztime $(FUZZTIME) $$pkg || exit 1; \
		done; \
	done

bench:
	$(GO) test -run '^$$' -bench . -benchmem $(PKGS)

# Send-ack latency and throughput over HTTP at 1 and 64 senders, for one
# process and for a 3-node region on loopback.
BENCH_DURATION ?= 20s
bench-http: build
	./bin/parley bench -spawn serve -senders 1 -convs 1 -duration $(BENCH_DURATION)
	./bin/parley bench -spawn serve -senders 64 -duration $(BENCH_DURATION)
	./bin/parley bench -spawn region3 -senders 1 -convs 1 -duration $(BENCH_DURATION)
	./bin/parley bench -spawn region3 -senders 64 -duration $(BENCH_DURATION)

# Device sessions over WebSocket with the Go SDK against a serve system in
# the bench's process: 200 clients in groups of 5 at 1,000 sends/s, then
# as fast as acks come back with 1,000 idle sessions besides (the edge's
# memory per session).
bench-sdk: build
	./bin/parley bench -transport ws -self -clients 200 -group-size 5 -rate 1000 -duration $(BENCH_DURATION)
	./bin/parley bench -transport ws -self -clients 200 -group-size 5 -idle 1000 -duration $(BENCH_DURATION)

# The region benchmark of docs/benchmarks.md: 3 cores and 2 edges as processes on
# loopback, 1,000 WebSocket clients in 1:1 pairs at 100 sends/s, then in
# 50-member groups at 20 sends/s (each report ends with the machine's CPU
# split, steal included: on a shared VM it decides the tail).
bench-region: build
	ulimit -n 20000 && ./bin/parley bench -transport ws -region -clients 1000 -group-size 2 -rate 100 -duration 30s -warmup 10s
	ulimit -n 20000 && ./bin/parley bench -transport ws -region -clients 1000 -group-size 50 -rate 20 -duration 30s -warmup 10s

# The testnet scenarios against real processes in network namespaces (root;
# installs nftables/iproute2 when missing). Reports and logs go to
# testnet/runs/<time>/. make testnet runs all six (5: presence
# convergence); make test runs scenarios 1-4 (a 2-minute soak) and a
# shorter 5 (one round, one edge cut) as TestSmoke in testnet/scenario.
SOAK ?= 10m
testnet:
	$(GO) run ./testnet/cmd/testnet -scenarios all -soak 2m

testnet-soak:
	$(GO) run ./testnet/cmd/testnet -scenarios 4 -soak $(SOAK)

vet:
	$(GO) vet $(PKGS)

clean:
	rm -rf bin data
