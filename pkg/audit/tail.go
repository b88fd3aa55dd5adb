package audit

import (
	"context"
	"fmt"
	"io"
	"time"
)

// TailOptions say what Tail and TailNATS print.
type TailOptions struct {
	N      int  // newest records to print first (-1: all, 0: none)
	JSON   bool // raw JSON lines instead of the pretty form
	Follow bool // then print every record as it is written, until ctx ends
	// Notice receives the one line saying where following starts (kept
	// off w, so JSON output stays records only); nil discards it.
	Notice io.Writer
}

// Tail prints the newest records of the journal in dir to w (newest last)
// and, with Follow, every record written after them.
func Tail(ctx context.Context, w io.Writer, dir string, o TailOptions) error {
	fl := NewFollower(dir, 0)
	defer fl.Close()
	var ring [][]byte
	for {
		batch, err := fl.Next(4096, 16<<20)
		if err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		for _, e := range batch {
			ring = keepLast(ring, o.N, e.Line)
		}
	}
	for _, l := range ring {
		WriteLine(w, l, o.JSON)
	}
	if !o.Follow {
		return nil
	}
	notice(o.Notice, "audit tail: following %s after seq %d\n", dir, fl.After())
	for {
		batch, err := fl.Next(4096, 16<<20)
		if err != nil {
			return err
		}
		for _, e := range batch {
			WriteLine(w, e.Line, o.JSON)
		}
		if len(batch) == 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
}

// keepLast appends line to ring, keeping at most n lines (n < 0: all).
func keepLast(ring [][]byte, n int, line []byte) [][]byte {
	if n > 0 && len(ring) == n {
		ring = ring[1:]
	}
	if n != 0 {
		ring = append(ring, line)
	}
	return ring
}

func notice(w io.Writer, format string, args ...any) {
	if w != nil {
		fmt.Fprintf(w, format, args...)
	}
}

// WriteLine prints one journal line: as it is, or in the pretty form.
func WriteLine(w io.Writer, line []byte, asJSON bool) {
	if asJSON {
		w.Write(line)
		io.WriteString(w, "\n")
		return
	}
	r, err := DecodeLine(line)
	if err != nil {
		fmt.Fprintf(w, "(undecodable record: %v)\n", err)
		return
	}
	io.WriteString(w, FormatPretty(r)+"\n")
}

// ParseWhen reads a search bound: RFC 3339, a date and time (UTC), a date,
// or a duration before now.
func ParseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		return now.Add(-d), nil
	}
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02 15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("parse time %q: want RFC 3339, a date, or a duration like 90m", s)
}
