package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
)

// cpuTimes are the machine's cumulative CPU times (all CPUs, in clock
// ticks) from the "cpu" line of /proc/stat.
type cpuTimes struct {
	busy, idle, iowait, steal uint64
}

// CPUShare is how the machine's CPU time went in a window, in percent of
// all CPUs: what this run measured under. Steal is time the hypervisor
// gave to other guests; on a shared VM it is the noise in every tail.
type CPUShare struct {
	Busy   float64 `json:"busy_pct"`
	IOWait float64 `json:"iowait_pct"`
	Steal  float64 `json:"steal_pct"`
}

func (s CPUShare) String() string {
	return fmt.Sprintf("CPU busy %.0f%%, iowait %.0f%%, steal %.0f%%", s.Busy, s.IOWait, s.Steal)
}

func readCPUTimes() (cpuTimes, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}, err
	}
	return parseCPUTimes(b)
}

// parseCPUTimes reads the aggregate line "cpu user nice system idle iowait
// irq softirq steal ..." (guest time is already in user and nice).
func parseCPUTimes(b []byte) (cpuTimes, error) {
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		f := bytes.Fields(sc.Bytes())
		if len(f) == 0 || string(f[0]) != "cpu" {
			continue
		}
		if len(f) < 9 {
			return cpuTimes{}, errors.New("/proc/stat: short cpu line")
		}
		var v [8]uint64
		for i := range v {
			n, err := strconv.ParseUint(string(f[i+1]), 10, 64)
			if err != nil {
				return cpuTimes{}, fmt.Errorf("/proc/stat: cpu field %d: %w", i+1, err)
			}
			v[i] = n
		}
		return cpuTimes{busy: v[0] + v[1] + v[2] + v[5] + v[6], idle: v[3], iowait: v[4], steal: v[7]}, nil
	}
	return cpuTimes{}, errors.New("/proc/stat: no cpu line")
}

// shareSince is the split of the time between a (earlier) and t.
func (t cpuTimes) shareSince(a cpuTimes) CPUShare {
	d := func(x, y uint64) float64 {
		if x < y {
			return 0
		}
		return float64(x - y)
	}
	busy, idle, io, steal := d(t.busy, a.busy), d(t.idle, a.idle), d(t.iowait, a.iowait), d(t.steal, a.steal)
	total := busy + idle + io + steal
	if total == 0 {
		return CPUShare{}
	}
	return CPUShare{Busy: busy / total * 100, IOWait: io / total * 100, Steal: steal / total * 100}
}
