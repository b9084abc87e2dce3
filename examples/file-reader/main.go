// file-reader: prints every file under CONFIG_DIR (default /config) every 10 seconds. Mount a
// ConfigMap there and edit it: the new content shows up, as with any kubelet.
package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	dir := os.Getenv("CONFIG_DIR")
	if dir == "" {
		dir = "/config"
	}
	for {
		entries, err := os.ReadDir(dir)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cannot read", dir+":", err)
			os.Exit(1)
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), "..") || e.IsDir() {
				continue
			}
			data, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				fmt.Fprintln(os.Stderr, e.Name()+":", err)
				continue
			}
			fmt.Printf("%s = %s\n", e.Name(), strings.TrimSpace(string(data)))
		}
		time.Sleep(10 * time.Second)
	}
}
