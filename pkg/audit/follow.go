package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
)

// Entry is one journal line as stored, for shipping: sinks send Line
// verbatim so the receiver can verify the chain itself.
type Entry struct {
	Seq  uint64
	Hash string
	Line []byte // without the newline
}

// Follower reads journal lines after a given seq, following the journal as
// it grows and rotates. It never blocks: Next returns what is there.
type Follower struct {
	dir   string
	after uint64 // last seq returned
	seg   Segment
	f     *os.File
	off   int64  // offset in f of the first byte not yet read into buf
	buf   []byte // unconsumed bytes read from f
	chunk []byte
	// caughtUp: the last read reached the end of the records
	caughtUp bool
	// Skipped counts lines that were not valid records (never shipped).
	Skipped uint64
}

// NewFollower starts after seq after (0: from the beginning).
func NewFollower(dir string, after uint64) *Follower {
	return &Follower{dir: dir, after: after, chunk: make([]byte, 256<<10)}
}

// After returns the last seq Next returned (or the starting point).
func (fl *Follower) After() uint64 { return fl.after }

// Close releases the open segment.
func (fl *Follower) Close() error {
	if fl.f != nil {
		err := fl.f.Close()
		fl.f = nil
		return err
	}
	return nil
}

// Next returns up to max entries (and about maxBytes) with seq > After(),
// in order; an empty result means nothing new yet.
func (fl *Follower) Next(max int, maxBytes int) ([]Entry, error) {
	var out []Entry
	size := 0
	for len(out) < max && size < maxBytes {
		if fl.f == nil {
			ok, err := fl.openNext()
			if err != nil || !ok {
				return out, err
			}
		}
		nl := bytes.IndexByte(fl.buf, '\n')
		if nl < 0 {
			n, err := fl.fill()
			if err != nil {
				return out, err
			}
			if n > 0 {
				continue
			}
			// at the end of this segment's records: move on only if a newer
			// one exists (then this one is complete; re-check for a last
			// write first)
			newer, err := fl.newerSegment()
			if err != nil || newer == nil {
				return out, err
			}
			if n, err = fl.fill(); err != nil {
				return out, err
			}
			if n > 0 {
				continue
			}
			fl.f.Close()
			fl.f, fl.buf = nil, fl.buf[:0] // a torn fragment at a segment's end is dropped
			fl.seg = *newer
			if err := fl.open(fl.seg); err != nil {
				return out, err
			}
			continue
		}
		line := fl.buf[:nl]
		e, ok := parseEntry(line)
		if !ok {
			fl.Skipped++
		} else if e.Seq > fl.after {
			e.Line = append([]byte(nil), line...)
			out = append(out, e)
			size += len(line)
			fl.after = e.Seq
		}
		fl.buf = fl.buf[nl+1:]
		if len(fl.buf) == 0 {
			fl.buf = fl.buf[:0:0]
		}
	}
	return out, nil
}

// openNext opens the segment that holds after+1.
func (fl *Follower) openNext() (bool, error) {
	segs, err := ListSegments(fl.dir)
	if err != nil || len(segs) == 0 {
		return false, err
	}
	pick := segs[0]
	for _, s := range segs {
		if s.FirstSeq <= fl.after+1 {
			pick = s
		}
	}
	fl.seg = pick
	return true, fl.open(pick)
}

// followReadAtEnd is the read size once the follower has caught up: the
// live segment continues with zeros allocated ahead of the records, and a
// full chunk of them would be copied on every poll.
const followReadAtEnd = 16 << 10

// fill reads what was written after fl.off into fl.buf, up to the records'
// end (see recordsEnd): zero bytes are space allocated ahead of the records,
// never consumed. It returns how many bytes it added.
func (fl *Follower) fill() (int, error) {
	want := fl.chunk
	if fl.caughtUp {
		want = want[:followReadAtEnd]
	}
	n, err := fl.f.ReadAt(want, fl.off)
	if err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("read segment: %w", err)
	}
	data := want[:n]
	data = data[:recordsEnd(data)]
	fl.caughtUp = len(data) < len(want)
	fl.buf = append(fl.buf, data...)
	fl.off += int64(len(data))
	return len(data), nil
}

func (fl *Follower) open(s Segment) error {
	f, err := os.Open(s.Path)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	fl.f, fl.off, fl.buf = f, 0, fl.buf[:0]
	return nil
}

func (fl *Follower) newerSegment() (*Segment, error) {
	segs, err := ListSegments(fl.dir)
	if err != nil {
		return nil, err
	}
	for _, s := range segs {
		if s.FirstSeq > fl.seg.FirstSeq || (s.FirstSeq == fl.seg.FirstSeq && s.Path > fl.seg.Path) {
			return &s, nil
		}
	}
	return nil, nil
}

// parseEntry extracts seq and hash from a line without decoding it all.
func parseEntry(line []byte) (Entry, bool) {
	n := len(line)
	if n < hashSuffixLen+2 || !bytes.HasPrefix(line[n-hashSuffixLen:], hashPrefix) {
		return Entry{}, false
	}
	h := line[n-hashSuffixLen+len(hashPrefix) : n-2]
	i := bytes.Index(line, []byte(`,"seq":`))
	if i < 0 {
		return Entry{}, false
	}
	j := i + len(`,"seq":`)
	k := j
	for k < n && line[k] >= '0' && line[k] <= '9' {
		k++
	}
	seq, err := strconv.ParseUint(string(line[j:k]), 10, 64)
	if err != nil {
		return Entry{}, false
	}
	return Entry{Seq: seq, Hash: string(h)}, true
}
