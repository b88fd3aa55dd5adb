package testutil_test

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// fakeTB records the test failures asked of it and, like the real one,
// ends the goroutine that asked (runtime.Goexit). Anything else goes to the
// real test it embeds.
type fakeTB struct {
	testing.TB
	mu     sync.Mutex
	fatals []string
}

func (f *fakeTB) Helper() {}

func (f *fakeTB) Fatal(args ...any) { f.fatal(fmt.Sprint(args...)) }

func (f *fakeTB) Fatalf(format string, args ...any) { f.fatal(fmt.Sprintf(format, args...)) }

func (f *fakeTB) FailNow() { f.fatal("FailNow") }

func (f *fakeTB) fatal(msg string) {
	f.mu.Lock()
	f.fatals = append(f.fatals, msg)
	f.mu.Unlock()
	runtime.Goexit()
}

// runFake runs fn with a fakeTB on its own goroutine, as the testing
// package runs a test, and reports whether fn returned (rather than being
// ended by a failure) and the failures recorded. It fails t if fn has not
// ended within 10s.
func runFake(t *testing.T, fn func(tb testing.TB)) (returned bool, fatals []string) {
	t.Helper()
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
		returned = true
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Eventually did not end within 10s")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return returned, f.fatals
}

// TestEventuallyReturnsOnceCheckSucceeds: a check that fails is called
// again; once it returns nil, Eventually returns without failing the test
// and calls it no more.
func TestEventuallyReturnsOnceCheckSucceeds(t *testing.T) {
	for _, failures := range []int{0, 1, 3} {
		t.Run(fmt.Sprintf("after %d failures", failures), func(t *testing.T) {
			calls := 0
			start := time.Now()
			returned, fatals := runFake(t, func(tb testing.TB) {
				testutil.Eventually(tb, 10*time.Second, func() error {
					calls++
					if calls <= failures {
						return fmt.Errorf("call %d fails", calls)
					}
					return nil
				})
			})
			if !returned || len(fatals) != 0 {
				t.Fatalf("returned %v, failures %q; want a return and no failure", returned, fatals)
			}
			if calls != failures+1 {
				t.Errorf("check called %d times, want %d", calls, failures+1)
			}
			// Polled every few milliseconds: 3 failures cost far less than 2s.
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("took %v to succeed after %d failures", d, failures)
			}
		})
	}
}

// TestEventuallyFailsWhenCheckNeverSucceeds: a check that never returns nil
// fails the test once the timeout has passed, with its last error, and the
// test goes no further.
func TestEventuallyFailsWhenCheckNeverSucceeds(t *testing.T) {
	const timeout = 50 * time.Millisecond
	calls := 0
	start := time.Now()
	returned, fatals := runFake(t, func(tb testing.TB) {
		testutil.Eventually(tb, timeout, func() error {
			calls++
			return fmt.Errorf("still %d", calls)
		})
	})
	elapsed := time.Since(start)
	if returned {
		t.Fatal("Eventually returned for a check that never succeeded")
	}
	if want := fmt.Sprintf("after %v: still %d", timeout, calls); len(fatals) != 1 || fatals[0] != want {
		t.Fatalf("failures %q, want one: %q", fatals, want)
	}
	if elapsed < timeout {
		t.Errorf("failed after %v, before the %v timeout", elapsed, timeout)
	}
	if calls < 2 {
		t.Errorf("check called %d times in %v, want it polled", calls, timeout)
	}
}

// TestEventuallyCheckMayEndTheTest: check runs on the test's goroutine, so
// a check that fails the test itself ends it there.
func TestEventuallyCheckMayEndTheTest(t *testing.T) {
	calls := 0
	returned, fatals := runFake(t, func(tb testing.TB) {
		testutil.Eventually(tb, 10*time.Second, func() error {
			calls++
			if calls == 2 {
				tb.Fatal("broken")
			}
			return errors.New("not yet")
		})
	})
	if returned || len(fatals) != 1 || fatals[0] != "broken" || calls != 2 {
		t.Fatalf("returned %v, failures %q, %d calls; want the check's own failure to end the test at call 2", returned, fatals, calls)
	}
}
