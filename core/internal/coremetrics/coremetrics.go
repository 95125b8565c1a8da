// Package coremetrics registers a core part's Prometheus series: they go
// on the Registerer together and come off it together, so that a part
// closed and opened again registers them anew.
package coremetrics

import "github.com/prometheus/client_golang/prometheus"

// Register registers cs on reg in order and returns a function that
// unregisters them all. If one fails, those already registered are
// unregistered and its error is returned. A nil reg registers nothing,
// and unregister then does nothing. unregister is safe to call more than
// once; it is not safe to call concurrently.
func Register(reg prometheus.Registerer, cs ...prometheus.Collector) (unregister func(), err error) {
	var done []prometheus.Collector
	unregister = func() {
		for _, c := range done {
			reg.Unregister(c)
		}
		done = nil
	}
	if reg == nil {
		return unregister, nil
	}
	for _, c := range cs {
		if err := reg.Register(c); err != nil {
			unregister()
			return nil, err
		}
		done = append(done, c)
	}
	return unregister, nil
}
