// A Go (GOOS=wasip1) guest: prints its arguments and environment, sleeps $SLEEP_MS, and exits
// with $EXIT_CODE.
package main

import (
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	fmt.Println("hello from Go wasm")
	for i, a := range os.Args {
		fmt.Printf("arg[%d]=%s\n", i, a)
	}
	for _, e := range os.Environ() {
		fmt.Println("env", e)
	}
	if ms, err := strconv.Atoi(os.Getenv("SLEEP_MS")); err == nil {
		time.Sleep(time.Duration(ms) * time.Millisecond)
	}
	code, _ := strconv.Atoi(os.Getenv("EXIT_CODE"))
	os.Exit(code)
}
