// Command k6 is k6 with cyclone-sse's `k6/x/sse` extension compiled in. loadtest/build-k6.sh
// builds it with plain `go build` (xk6 is not available from the Go module proxy here); this is
// what xk6 would generate.
package main

import (
	k6cmd "go.k6.io/k6/cmd"

	_ "github.com/cyclone-sse/cyclone-sse/loadtest/xk6-sse" // registers k6/x/sse
)

func main() {
	k6cmd.Execute()
}
