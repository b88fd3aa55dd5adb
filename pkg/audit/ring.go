package audit

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The ring is the write-ahead step of sync=batch when Config.RingDir is
// set: a file on a memory file system (tmpfs), mapped into the daemon. A
// record is copied into the mapping under the journal's lock and the
// statement goes on; the background loop writes the records to the live
// segment once per batch window (one pwrite for all of them) and
// fdatasyncs it. A process crash keeps the mapping's pages, as it keeps the
// page cache a pwrite leaves behind, so kill -9 loses nothing either way;
// the next Open replays from the ring every record the segments lack.
//
// Why a memory file system: a store into a mapped page of a disk file faults
// whenever writeback has write-protected the page again (after every
// fdatasync), which under load costs more than the pwrite it saves. No
// writeback ever touches a tmpfs page.
//
// The ring holds the records' bytes exactly as the segment will, at their
// logical journal offset modulo its size, so it needs no index: recovery
// reads every newline-delimited line of it (joining the one that wraps),
// keeps those that hash correctly, and follows the chain from the
// segments' last record for as long as it continues. A line left half
// copied by a crash does not hash, and its Append never returned. Bytes of a
// record are overwritten only after the record is in the segment.
//
// The ring file is bound to its journal by an id kept in both (the journal
// directory's .ring-id and the ring's header): a ring left by another
// journal, or by this directory before it was emptied, is never replayed.

// RingAuto as Config.RingDir places the ring in /dev/shm/sqlwarden when
// /dev/shm is a memory file system, and turns it off otherwise.
const RingAuto = "auto"

// RingOff as Config.RingDir (or an empty RingDir) writes every record
// with a pwrite before Append returns, in every sync mode.
const RingOff = "off"

// DefaultRingBytes is the ring's size when Config.RingBytes is zero.
const DefaultRingBytes = 4 << 20

const (
	ringHeaderLen = 4096
	ringIDLen     = 16
	ringIDFile    = ".ring-id"
	ringPathFile  = ".ring-path" // where the ring is, for readers of the directory
	tmpfsMagic    = 0x01021994
)

var ringMagic = []byte("SQLWARDEN-RING-1")

type ring struct {
	path string
	f    *os.File
	mem  []byte // the whole mapping
	data []byte // mem[ringHeaderLen:]
}

// resolveRingDir turns Config.RingDir into a directory, or "" for off.
func resolveRingDir(dir string) string {
	switch dir {
	case "", RingOff:
		return ""
	case RingAuto:
		if isTmpfs("/dev/shm") {
			return "/dev/shm/sqlwarden"
		}
		return ""
	}
	return dir
}

func isTmpfs(dir string) bool {
	var st syscall.Statfs_t
	return syscall.Statfs(dir, &st) == nil && st.Type == tmpfsMagic
}

// ringPath names the ring of the journal in dir: one per journal
// directory, so that several journals on one machine never share one.
func ringPath(ringDir, journalDir string) string {
	abs, err := filepath.Abs(journalDir)
	if err != nil {
		abs = journalDir
	}
	sum := sha256.Sum256([]byte(abs))
	return filepath.Join(ringDir, "sqlwarden-journal-"+hex.EncodeToString(sum[:8])+".ring")
}

// loadOrCreateRingID returns the journal directory's ring id.
func loadOrCreateRingID(journalDir string) ([]byte, error) {
	p := filepath.Join(journalDir, ringIDFile)
	b, err := os.ReadFile(p)
	if err == nil && len(b) == ringIDLen {
		return b, nil
	}
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	id := make([]byte, ringIDLen)
	if _, err := rand.Read(id); err != nil {
		return nil, err
	}
	if err := os.WriteFile(p, id, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", p, err)
	}
	if err := syncDir(journalDir); err != nil {
		return nil, fmt.Errorf("sync audit dir: %w", err)
	}
	return id, nil
}

// privateDir makes dir (0700) and checks that nobody but this process's
// user can place or change a file in it: a directory on a shared memory
// file system (/dev/shm is writable by every user) that someone else made,
// or made writable, could hand the daemon a ring file that user reads —
// the records' statements — or writes: records that chain, forged for the
// next start to replay.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("%s is not a directory (a symbolic link?)", dir)
	case !ok || int(st.Uid) != os.Geteuid():
		return fmt.Errorf("%s belongs to another user", dir)
	case fi.Mode().Perm()&0o022 != 0:
		return fmt.Errorf("%s is writable by other users (mode %v)", dir, fi.Mode().Perm())
	}
	return nil
}

// readRing returns what the ring at path held for the journal with this id
// — records a crash may have left behind — or nil when there is no ring,
// or it is another journal's.
func readRing(path string, id []byte) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read journal ring: %w", err)
	}
	defer f.Close()
	old, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("read journal ring: %w", err)
	}
	if len(old) <= ringHeaderLen || !bytes.HasPrefix(old, ringMagic) ||
		!bytes.Equal(old[len(ringMagic):len(ringMagic)+ringIDLen], id) {
		return nil, nil
	}
	return old[ringHeaderLen:], nil
}

// createRing makes the ring at path empty, size bytes of records after its
// header, and maps it. Whatever the file held is gone: the caller has
// replayed it first. Every page is touched before createRing returns, so no
// copy into the ring waits for a page to be allocated.
func createRing(path string, size int64, id []byte) (r *ring, err error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal ring: %w", err)
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	total := ringHeaderLen + size
	if err := f.Truncate(0); err != nil {
		return nil, fmt.Errorf("reset journal ring: %w", err)
	}
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, total); err != nil && !errors.Is(err, syscall.EOPNOTSUPP) {
		return nil, fmt.Errorf("allocate journal ring (%d bytes): %w", total, err)
	}
	if err := f.Truncate(total); err != nil {
		return nil, fmt.Errorf("size journal ring: %w", err)
	}
	mem, err := syscall.Mmap(int(f.Fd()), 0, int(total), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED|syscall.MAP_POPULATE)
	if err != nil {
		return nil, fmt.Errorf("map journal ring: %w", err)
	}
	copy(mem[len(ringMagic):], id)
	copy(mem, ringMagic)
	return &ring{path: path, f: f, mem: mem, data: mem[ringHeaderLen:]}, nil
}

// put copies line into the ring at the journal offset off (wrapping), and
// a newline before it: recovery finds a record after a newline, and the
// record before this one may not be in the ring (the ring had no room for
// it: it was written to the segment before this one was admitted, so its
// bytes in the ring are free, but they are another lap's).
func (r *ring) put(off int64, line []byte) {
	n := int64(len(r.data))
	r.data[(off+n-1)%n] = '\n'
	at := off % n
	c := copy(r.data[at:], line)
	if c < len(line) {
		copy(r.data, line[c:])
	}
}

// clear zeroes the ring's bytes of the journal offsets [lo, hi): records
// that were chained but will never be written (a failed write rolls the
// chain back and their seqs are given again).
func (r *ring) clear(lo, hi int64) {
	n := int64(len(r.data))
	if hi-lo >= n {
		clear(r.data)
		return
	}
	for lo < hi {
		at := lo % n
		end := min(n, at+(hi-lo))
		clear(r.data[at:end])
		lo += end - at
	}
}

// close unmaps the ring; with remove (every record it held is in a synced
// segment) the file goes too.
func (r *ring) close(remove bool) error {
	err := syscall.Munmap(r.mem)
	if cerr := r.f.Close(); err == nil {
		err = cerr
	}
	if remove {
		if rerr := os.Remove(r.path); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// ringRecords returns, from a ring's content, the lines that continue the
// chain after (seq, head): seq+1 whose prev_hash is head, then its
// successor, for as long as the ring has it — n records, the last lastSeq
// with hash lastHash. later counts the valid records after seq it found in
// all, replayed or not. A line ends at a newline and
// begins after the newline or zero byte before it; the one across the end
// of the ring is joined with its start.
func ringRecords(data []byte, seq uint64, head string) (out []byte, n int, lastSeq uint64, lastHash string, later int) {
	lastSeq, lastHash = seq, head
	first := bytes.IndexByte(data, '\n')
	if first < 0 {
		return nil, 0, seq, head, 0
	}
	type cand struct {
		line []byte
		prev string
		hash string
	}
	bySeq := map[uint64][]cand{}
	consider := func(line []byte) {
		// a record follows a newline or zeros (bytes never written, or
		// cleared): what precedes its last zero byte is not part of it
		if i := bytes.LastIndexByte(line, 0); i >= 0 {
			line = line[i+1:]
		}
		if len(line) == 0 {
			return
		}
		r, err := CheckLine(line)
		if err != nil || r.Seq <= seq {
			return
		}
		bySeq[r.Seq] = append(bySeq[r.Seq], cand{line: line, prev: r.PrevHash, hash: r.Hash})
		later++
	}
	// the lines wholly inside the ring, each after a newline
	off := first + 1
	for off < len(data) {
		nl := bytes.IndexByte(data[off:], '\n')
		if nl < 0 {
			break
		}
		consider(data[off : off+nl])
		off += nl + 1
	}
	// the line at the ring's start (before it wrapped), and the line that
	// wraps: after the last newline, on through the first
	consider(data[:first])
	if off < len(data) {
		consider(append(append([]byte(nil), data[off:]...), data[:first]...))
	}

	for {
		next := false
		for _, c := range bySeq[lastSeq+1] {
			if c.prev == lastHash {
				out = append(append(out, c.line...), '\n')
				lastSeq, lastHash, next = lastSeq+1, c.hash, true
				n++
				break
			}
		}
		if !next {
			return out, n, lastSeq, lastHash, later
		}
	}
}

// openRing replays what the journal's ring holds beyond the segments' last
// record (a crash's leftovers), then makes the ring empty and maps it.
// Called by Open with the live segment open, before anything is appended.
func (j *Journal) openRing(dir string) (replayed int, err error) {
	if err := privateDir(dir); err != nil {
		// a statement then waits for its own write, as without a ring
		j.log.Error("audit.ring_dir is not private to the daemon: journal runs without its ring", "ring_dir", dir, "err", err)
		return 0, nil
	}
	if !isTmpfs(dir) {
		j.log.Warn("audit.ring_dir is not a memory file system (tmpfs): copies into the ring may wait for writeback", "ring_dir", dir)
	}
	id, err := loadOrCreateRingID(j.cfg.Dir)
	if err != nil {
		return 0, err
	}
	path := ringPath(dir, j.cfg.Dir)
	if err := os.WriteFile(filepath.Join(j.cfg.Dir, ringPathFile), []byte(path+"\n"), 0o600); err != nil {
		return 0, fmt.Errorf("record the journal ring's path: %w", err)
	}
	left, err := readRing(path, id)
	if err != nil {
		return 0, err
	}
	recs, n, seq, head, later := ringRecords(left, j.seq, j.head)
	if n > 0 {
		if err := j.writeOut(recs, j.seq+1, false); err != nil {
			return 0, fmt.Errorf("replay journal ring: %w", err)
		}
		if err := j.syncFile(); err != nil {
			return 0, fmt.Errorf("replay journal ring: %w", err)
		}
		j.seq, j.head = seq, head
		j.writtenSeq, j.writtenHead = seq, head
		j.log.Warn("replayed records from the journal ring after a crash", "records", n, "last_seq", seq, "ring", path)
	}
	if later > n {
		// valid records that do not continue the segments' chain: kept
		// for whoever investigates, never replayed
		keep := filepath.Join(j.cfg.Dir, fmt.Sprintf("ring-unreplayed-%d", j.cfg.Clock().UnixNano()))
		if err := os.WriteFile(keep, left, 0o600); err != nil {
			j.log.Warn("save unreplayed ring", "err", err)
		}
		j.log.Error("the journal ring holds records that do not continue the journal's chain; saved, not replayed",
			"records", later-n, "saved", keep)
	}
	r, err := createRing(path, j.cfg.RingBytes, id)
	if err != nil {
		return n, err
	}
	j.ring = r
	j.ringLimit = j.written + j.ringRoom(true)
	return n, nil
}

// ringRoom is how many bytes of records not yet written the ring may hold
// after a write: no more than the ring itself, the live segment's blocks
// allocated ahead (so a full disk is found by a write a statement waits
// for, never after the statement ran) and the room left before the segment
// rotates. Called under mu by the writer, or by Open.
func (j *Journal) ringRoom(ok bool) int64 {
	if !ok || j.broken || j.m == nil || j.rotateDue.Load() {
		return 0
	}
	return max(0, min(int64(len(j.ring.data)), j.m.alloc.Load()-j.m.size, j.cfg.SegmentMaxBytes-j.m.size))
}

// ringBacklog counts the records the ring of the journal in dir holds after
// (seq, head), the last record of its segments: records a running daemon
// has not written yet, or that a killed one left for its next start.
func ringBacklog(dir string, seq uint64, head string) (n int, path string) {
	b, err := os.ReadFile(filepath.Join(dir, ringPathFile))
	if err != nil {
		return 0, ""
	}
	id, err := os.ReadFile(filepath.Join(dir, ringIDFile))
	if err != nil {
		return 0, ""
	}
	path = string(bytes.TrimSpace(b))
	data, err := readRing(path, id)
	if err != nil || data == nil {
		return 0, ""
	}
	_, n, _, _, _ = ringRecords(data, seq, head)
	return n, path
}
