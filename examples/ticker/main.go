// ticker: a long-running logger. Every INTERVAL (default 1s) it writes one line, so
// `kubectl logs -f` has something to follow and `kubectl top pod` something to measure.
package main

import (
	"fmt"
	"os"
	"time"
)

func main() {
	interval, err := time.ParseDuration(os.Getenv("INTERVAL"))
	if err != nil || interval <= 0 {
		interval = time.Second
	}
	for n := 1; ; n++ {
		fmt.Printf("tick %d at %s\n", n, time.Now().UTC().Format(time.RFC3339Nano))
		time.Sleep(interval)
	}
}
