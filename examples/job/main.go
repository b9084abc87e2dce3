// primes: a batch job. It counts the primes below LIMIT (default 2,000,000), prints the count and
// exits 0, so its Job completes.
package main

import (
	"fmt"
	"os"
	"strconv"
)

func main() {
	limit, err := strconv.Atoi(os.Getenv("LIMIT"))
	if err != nil || limit < 2 {
		limit = 2_000_000
	}
	composite := make([]bool, limit)
	count := 0
	for i := 2; i < limit; i++ {
		if composite[i] {
			continue
		}
		count++
		for j := i * i; j < limit; j += i {
			composite[j] = true
		}
	}
	fmt.Printf("%d primes below %d\n", count, limit)
}
