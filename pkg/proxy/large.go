package proxy

import (
	"runtime/debug"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"
)

// Judging a statement costs memory in proportion to its text: the parser
// copies a literal several times over while it scans it (a 64 MiB string
// took 256 MB in the parser's buffers), the digest, the parse tree and the
// journal record each hold it once more, and until the next collection the
// heap keeps all of it — a 64 MiB statement grew the daemon by 800 MB, and
// four at once by 2.7 GB. So the bytes of large statements judged and run
// at once are bounded: a command over largeStatement bytes waits for its
// size (at most largeBudget) in the server's budget, and when it is done the
// session forgets it and the memory goes back to the system.
const (
	largeStatement = 4 << 20
	largeBudget    = 64 << 20
)

// largeBytes is the budget of large statements in flight.
type largeBytes struct {
	sem     *semaphore.Weighted
	pending atomic.Bool // a large statement ended since the last free
	freeing atomic.Bool // a goroutine is freeing
}

func newLargeBytes() *largeBytes { return &largeBytes{sem: semaphore.NewWeighted(largeBudget)} }

// large runs a command of n bytes within the budget of large statements:
// waiting for room (or for the session's end) when others are in flight.
// The budget is held while the statement is judged and journaled, where
// the memory goes; it is given back before the statement waits for a human
// or runs on the server (releaseLarge), so that a slow one does not hold
// up the others.
func (s *session) large(n int, run func() error) error {
	w := int64(min(n, largeBudget))
	if err := s.srv.large.sem.Acquire(s.ctx, w); err != nil {
		return &protocolError{side: "session", err: err}
	}
	s.largeHeld = w
	err := run()
	s.releaseLarge()
	// The statement is over: nothing of it stays with the session, and its
	// memory goes back once the client leg has let go of the packet too
	// (freeLarge, at the top of the loop).
	s.cur = stmtLife{}
	s.freeLarge = true
	return err
}

// releaseLarge gives back the budget a large statement holds, if any.
func (s *session) releaseLarge() {
	if s.largeHeld > 0 {
		s.srv.large.sem.Release(s.largeHeld)
		s.largeHeld = 0
	}
}

// free returns the memory of large statements to the system once none is
// in flight (a full collection, so at most one at a time, in the
// background).
func (l *largeBytes) free() {
	if !l.sem.TryAcquire(largeBudget) {
		return // others in flight: the last one frees
	}
	l.sem.Release(largeBudget)
	l.pending.Store(true)
	if !l.freeing.CompareAndSwap(false, true) {
		return // the running one frees again for this one
	}
	go func() {
		for {
			// A moment for what the statement left in flight (its outcome
			// record, the session's reply buffers) to let go of it too.
			time.Sleep(100 * time.Millisecond)
			for l.pending.Swap(false) {
				debug.FreeOSMemory()
			}
			l.freeing.Store(false)
			if !l.pending.Load() || !l.freeing.CompareAndSwap(false, true) {
				return
			}
		}
	}()
}
