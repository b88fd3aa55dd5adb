package audit

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// ErrStop can be returned by a ReadAll callback to stop early without error.
var ErrStop = errors.New("stop reading")

// maxLine bounds one journal line when reading, so that a damaged segment
// without newlines is not read whole. It is above the longest record the
// journal writes: a statement of up to 1 GiB (the protocol's largest
// packet, max_packet_size at most) JSON-escaped (up to six bytes per byte)
// and, when it is not UTF-8, base64 besides. Whatever the writer wrote, the
// tools must read back: the chain cannot be checked past a record they skip.
const maxLine = 8 << 30

// lineScanner yields complete (newline-terminated) lines of one segment and
// reports an unterminated final fragment separately. The records of a
// segment end at its first zero byte (see recordsEnd): what follows is the
// preallocated tail of the live segment, or a record cut short by a crash.
type lineScanner struct {
	r    *bufio.Reader
	off  int64 // offset of the next line
	torn []byte
	done bool
}

func newLineScanner(r io.Reader) *lineScanner {
	return &lineScanner{r: bufio.NewReaderSize(r, 256<<10)}
}

// next returns the next complete line without its newline, or io.EOF. A
// final fragment without newline, and any non-zero bytes after the first
// zero byte, are kept in s.torn and io.EOF returned.
func (s *lineScanner) next() ([]byte, error) {
	if s.done {
		return nil, io.EOF
	}
	line, err := s.r.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		big := append([]byte(nil), line...)
		for errors.Is(err, bufio.ErrBufferFull) && bytes.IndexByte(line, 0) < 0 {
			if len(big) > maxLine {
				return nil, fmt.Errorf("read journal: line longer than %d bytes", maxLine)
			}
			line, err = s.r.ReadSlice('\n')
			big = append(big, line...)
		}
		line = big
	}
	if bytes.IndexByte(line, 0) >= 0 {
		return nil, s.tail(line)
	}
	if err == nil {
		s.off += int64(len(line))
		return line[:len(line)-1], nil
	}
	if errors.Is(err, io.EOF) {
		if len(line) > 0 {
			s.torn = append([]byte(nil), line...)
		}
		s.done = true
		return nil, io.EOF
	}
	return nil, fmt.Errorf("read journal: %w", err)
}

// tail consumes the rest of a segment from the start of the line holding
// its first zero byte, keeping the non-zero bytes' extent as s.torn.
func (s *lineScanner) tail(head []byte) error {
	s.done = true
	torn := append([]byte(nil), trimZeros(head)...)
	zeros := len(head) - len(torn)
	buf := make([]byte, 64<<10)
	for {
		n, err := s.r.Read(buf)
		if t := trimZeros(buf[:n]); len(t) > 0 {
			torn = append(torn, make([]byte, zeros)...)
			torn = append(torn, t...)
			zeros = n - len(t)
		} else {
			zeros += n
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read journal: %w", err)
		}
	}
	if len(torn) > 0 {
		s.torn = torn
	}
	return io.EOF
}

// ReadAll calls fn for every record in dir's journal in order (checkpoints
// included). Records are decoded without chain verification (use Verify for
// that); lines that do not decode and an unterminated final line are skipped.
// fn may return ErrStop to end early.
func ReadAll(dir string, fn func(*record.Record) error) error {
	segs, err := ListSegments(dir)
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if err := readSegment(seg.Path, 0, func(line []byte, _ int64) error {
			if len(bytes.TrimSpace(line)) == 0 {
				return nil
			}
			r, err := DecodeLine(line)
			if err != nil {
				return nil
			}
			return fn(r)
		}); err != nil {
			if errors.Is(err, ErrStop) {
				return nil
			}
			return err
		}
	}
	return nil
}

// readSegment calls fn for each complete line of a segment from offset
// start; the offset passed is that of the line's end.
func readSegment(path string, start int64, fn func(line []byte, end int64) error) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	if start > 0 {
		if _, err := f.Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("seek segment: %w", err)
		}
	}
	sc := newLineScanner(f)
	sc.off = start
	for {
		line, err := sc.next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := fn(line, sc.off); err != nil {
			return err
		}
	}
}

// ReadSession returns the records of one session in journal order.
func ReadSession(dir, sessionID string) ([]*record.Record, error) {
	var out []*record.Record
	err := ReadAll(dir, func(r *record.Record) error {
		if r.SessionID == sessionID {
			out = append(out, r)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("read session %s: no records", sessionID)
	}
	return out, nil
}
