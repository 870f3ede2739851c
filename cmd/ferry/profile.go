package main

import (
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
)

// startProfiles writes a CPU profile to $FERRY_CPUPROFILE, an execution
// trace to $FERRY_TRACE (where a run waits rather than computes) and, when
// ferry ends, a heap profile to $FERRY_MEMPROFILE: for measuring ferry
// itself (make bench, go tool pprof, go tool trace), never needed to use it.
// The returned function ends them.
func startProfiles(stderr io.Writer) func() {
	var stops []func()
	// stream starts, into the file $env names, a recording that stop ends.
	stream := func(env string, start func(io.Writer) error, stop func()) {
		path := os.Getenv(env)
		if path == "" {
			return
		}
		f, err := os.Create(path)
		if err == nil {
			err = start(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "ferry: %s: %v\n", env, err)
			return
		}
		stops = append(stops, func() { stop(); f.Close() })
	}
	stream("FERRY_CPUPROFILE", pprof.StartCPUProfile, pprof.StopCPUProfile)
	stream("FERRY_TRACE", trace.Start, trace.Stop)
	if path := os.Getenv("FERRY_MEMPROFILE"); path != "" {
		stops = append(stops, func() {
			f, err := os.Create(path)
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				f.Close()
			}
			if err != nil {
				fmt.Fprintf(stderr, "ferry: FERRY_MEMPROFILE: %v\n", err)
			}
		})
	}
	return func() {
		for _, stop := range stops {
			stop()
		}
	}
}
