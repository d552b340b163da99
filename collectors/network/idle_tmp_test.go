package network

import (
	"syscall"
	"testing"
	"time"
)

func TestIdleCPUTmp(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Summarize = true
	runCollector(t, cfg)
	time.Sleep(time.Second)
	var a, b syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &a)
	time.Sleep(5 * time.Second)
	syscall.Getrusage(syscall.RUSAGE_SELF, &b)
	t.Logf("idle cpu %v per s", time.Duration((b.Utime.Nano()+b.Stime.Nano()-a.Utime.Nano()-a.Stime.Nano())/5))
}
