package main

const (
	debugFlagUsage   = "serve Go profiles (/debug/pprof/), counters (/debug/vars) and the Prometheus metrics (/metrics) on this address, e.g. 127.0.0.1:6060 (default off); keep it on loopback"
	metricsFlagUsage = "serve Prometheus metrics (/metrics), liveness (/livez) and readiness (/readyz) on this address, e.g. 127.0.0.1:9090 (default off)"
)
