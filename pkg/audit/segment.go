package audit

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// Segments are named by the seq of their first record, zero-padded so that
// lexical order is journal order: journal-00000000000000000001.jsonl.
const (
	segmentPrefix = "journal-"
	segmentSuffix = ".jsonl"
)

// Segment is one journal file.
type Segment struct {
	Path     string
	FirstSeq uint64 // from the file name
}

// SegmentName is the file name of the segment whose first record is firstSeq
// (package sink names a stream copy with it).
func SegmentName(firstSeq uint64) string {
	return fmt.Sprintf("%s%020d%s", segmentPrefix, firstSeq, segmentSuffix)
}

// ListSegments returns the journal segments in dir in journal order.
func ListSegments(dir string) ([]Segment, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list segments: %w", err)
	}
	var segs []Segment
	for _, e := range ents {
		name := e.Name()
		if e.IsDir() || !strings.HasPrefix(name, segmentPrefix) || !strings.HasSuffix(name, segmentSuffix) {
			continue
		}
		num := strings.TrimSuffix(strings.TrimPrefix(name, segmentPrefix), segmentSuffix)
		if i := strings.IndexByte(num, '-'); i >= 0 {
			num = num[:i] // a sibling started after a damaged segment
		}
		n, err := strconv.ParseUint(num, 10, 64)
		if err != nil {
			continue
		}
		segs = append(segs, Segment{Path: filepath.Join(dir, name), FirstSeq: n})
	}
	sort.Slice(segs, func(i, k int) bool {
		if segs[i].FirstSeq != segs[k].FirstSeq {
			return segs[i].FirstSeq < segs[k].FirstSeq
		}
		return segs[i].Path < segs[k].Path
	})
	return segs, nil
}

// trimZeros returns b without its trailing zero bytes.
func trimZeros(b []byte) []byte {
	i := len(b)
	for i >= 8 && binary.LittleEndian.Uint64(b[i-8:i]) == 0 {
		i -= 8
	}
	for i > 0 && b[i-1] == 0 {
		i--
	}
	return b[:i]
}

// recordsEnd returns where the records of a segment's content end: at its
// first zero byte, if any. The live segment is allocated ahead of its
// records and reads as zeros there; a record being copied in (or cut short
// by a crash) may show zero bytes anywhere in it. Records themselves never
// contain a zero byte, so every byte before the first zero is final.
func recordsEnd(data []byte) int {
	if i := bytes.IndexByte(data, 0); i >= 0 {
		return i
	}
	return len(data)
}

// tailState is what Open learns from the newest segment(s).
type tailState struct {
	seg       Segment
	size      int64  // bytes of valid lines in seg
	lastSeq   uint64 // 0 if the journal is empty
	lastHash  string
	tornBytes int64  // non-zero bytes after the last valid line (cut off on recovery)
	torn      []byte // those bytes, kept for forensics (first 64 KiB)
	conflict  bool   // a valid line follows an invalid one: not a torn tail, do not truncate
}

// scanTail finds the last valid record of a segment's content (up to its
// records' end). A valid line is newline-terminated, hashes correctly and
// decodes. Everything after the last valid line is the torn tail, unless a
// later complete line is also a valid record (then the damage is not a torn
// write and is left for verify).
func scanTail(data []byte) (validEnd int64, lastSeq uint64, lastHash string, conflict bool) {
	data = data[:recordsEnd(data)]
	off := 0
	badSeen := false
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			break
		}
		line := data[off : off+nl]
		r, err := CheckLine(line)
		if err == nil {
			if badSeen {
				conflict = true
			}
			validEnd = int64(off + nl + 1)
			lastSeq = r.Seq
			lastHash = r.Hash
		} else {
			badSeen = true
		}
		off += nl + 1
	}
	return validEnd, lastSeq, lastHash, conflict
}

// readTail inspects the newest segment (and older ones when it holds no
// valid record) to recover the chain head.
func readTail(segs []Segment) (tailState, error) {
	var st tailState
	if len(segs) == 0 {
		st.lastHash = GenesisHash
		return st, nil
	}
	for i := len(segs) - 1; i >= 0; i-- {
		data, err := os.ReadFile(segs[i].Path)
		if err != nil {
			return st, fmt.Errorf("read segment: %w", err)
		}
		end, seq, h, conflict := scanTail(data)
		if i == len(segs)-1 {
			st.seg = segs[i]
			st.size = end
			st.conflict = conflict
			if conflict {
				st.size = int64(recordsEnd(data))
			} else if t := trimZeros(data[end:]); len(t) > 0 {
				st.tornBytes = int64(len(t))
				if len(t) > 64<<10 {
					t = t[:64<<10]
				}
				st.torn = append([]byte(nil), t...)
			}
		}
		if seq != 0 {
			st.lastSeq, st.lastHash = seq, h
			return st, nil
		}
	}
	st.lastHash = GenesisHash
	return st, nil
}
