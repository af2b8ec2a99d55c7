package bench

import (
	"fmt"
	"os"
	"os/signal"
	"runtime/pprof"
	"syscall"
)

// Environment of a node the bench profiles.
const (
	// ProfileEnv names the file a process writes its CPU profile to.
	ProfileEnv = "TRIBUTARY_CPUPROFILE"
	// ProfileNowEnv=1 starts the profile at once instead of at SIGUSR1.
	ProfileNowEnv = "TRIBUTARY_CPUPROFILE_NOW"
)

// ServeProfileSignals makes this process write a CPU profile when the
// environment asks for one (ProfileEnv), and does nothing otherwise. The
// profile starts at the first SIGUSR1 (or at once, with ProfileNowEnv=1)
// and is written at the next SIGUSR1 or at SIGTERM: to FILE.tmp, then
// renamed to FILE, so whoever waits for FILE sees a whole profile. The
// bench calls it from the binary's init: a node it starts profiles just
// the measured part of a scenario.
func ServeProfileSignals() {
	path := os.Getenv(ProfileEnv)
	if path == "" {
		return
	}
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGUSR1, syscall.SIGTERM)
	var f *os.File
	start := func() {
		var err error
		if f, err = os.Create(path + ".tmp"); err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
			return
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
			f.Close()
			f = nil
		}
	}
	stop := func() {
		pprof.StopCPUProfile()
		err := f.Close()
		if err == nil {
			err = os.Rename(path+".tmp", path)
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "cpu profile:", err)
		}
		f = nil
	}
	if os.Getenv(ProfileNowEnv) == "1" {
		start()
	}
	// This goroutine lives as long as the process: it is the process's
	// profile switch.
	go func() {
		for sig := range sigs {
			switch {
			case f != nil:
				stop()
			case sig == syscall.SIGUSR1:
				start()
			}
		}
	}()
}
