package testutil

import (
	"testing"
	"time"
)

// pollInterval is how long Eventually sleeps between calls of check.
const pollInterval = 5 * time.Millisecond

// Eventually calls check every few milliseconds until it returns nil, and fails the test
// (t.Fatal) with check's last error if that has not happened within timeout.
//
// check runs on the caller's goroutine, so it may itself end the test
// (t.Fatal) when it sees something that waiting cannot mend. The error it
// returns should say what is still missing and show the state it saw: it
// is the failure message, after "after <timeout>: ".
func Eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
			return
		}
		time.Sleep(pollInterval)
	}
}
