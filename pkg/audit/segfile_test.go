package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// liveSegment returns the newest segment's path and content.
func liveSegment(t *testing.T, dir string) (string, []byte) {
	t.Helper()
	segs, err := ListSegments(dir)
	if err != nil || len(segs) == 0 {
		t.Fatalf("list segments: %v %v", segs, err)
	}
	p := segs[len(segs)-1].Path
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return p, b
}

// TestLiveSegmentIsPreallocated: while the journal is open its live segment
// is longer than its records (zeros allocated ahead), and every reader —
// ReadAll, the Follower, Verify — sees exactly the records. After Close the
// file holds the records only.
func TestLiveSegmentIsPreallocated(t *testing.T) {
	for _, mode := range []string{SyncBatch, SyncAlways} {
		t.Run(mode, func(t *testing.T) { liveSegmentIsPreallocated(t, mode) })
	}
}

func liveSegmentIsPreallocated(t *testing.T, mode string) {
	dir := t.TempDir()
	j := openTest(t, dir, func(c *Config) { c.Sync = mode })
	for i := 1; i <= 50; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	_, b := liveSegment(t, dir)
	end := recordsEnd(b)
	if len(b) < segmentChunk || end >= len(b) {
		t.Fatalf("live segment is %d bytes with records to %d: not allocated ahead", len(b), end)
	}
	if len(trimZeros(b[end:])) != 0 {
		t.Fatal("bytes after the records are not all zero")
	}
	if bytes.Count(b[:end], []byte("\n")) != 51 || b[end-1] != '\n' {
		t.Fatalf("records before the zero tail: %d lines", bytes.Count(b[:end], []byte("\n")))
	}

	n := 0
	if err := ReadAll(dir, func(*record.Record) error { n++; return nil }); err != nil || n != 51 {
		t.Fatalf("ReadAll on the live journal: %d records, %v", n, err)
	}
	fl := NewFollower(dir, 0)
	defer fl.Close()
	got, err := fl.Next(1000, 1<<20)
	if err != nil || len(got) != 51 || fl.Skipped != 0 {
		t.Fatalf("follower on the live journal: %d entries, %d skipped, %v", len(got), fl.Skipped, err)
	}
	rep, err := VerifyWith(dir, VerifyOptions{PublicKey: j.PublicKey()})
	if err != nil || !rep.OK || len(rep.Warnings) != 0 || rep.Records != 51 {
		t.Fatalf("verify of the live journal: %+v %v", rep, err)
	}
	// the follower picks up what is written next, not the zeros it saw
	if err := j.Append(stmt(51)); err != nil {
		t.Fatal(err)
	}
	got, err = fl.Next(1000, 1<<20)
	if err != nil || len(got) != 1 || got[0].Seq != 52 {
		t.Fatalf("follower after one more record: %+v %v", got, err)
	}

	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	_, b = liveSegment(t, dir)
	if bytes.IndexByte(b, 0) >= 0 || b[len(b)-1] != '\n' {
		t.Fatalf("closed segment still has a zero tail (%d bytes, records to %d)", len(b), recordsEnd(b))
	}
	if rs := readChecked(t, dir); len(rs) != 53 {
		t.Fatalf("after close: %d records", len(rs))
	}
}

// TestRotatedSegmentsHoldOnlyRecords: rotation cuts the old segment to its
// records; only the live one has a zero tail.
func TestRotatedSegmentsHoldOnlyRecords(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, func(c *Config) { c.SegmentMaxBytes = 4000 })
	for i := 1; i <= 100; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	segs, _ := ListSegments(dir)
	if len(segs) < 5 {
		t.Fatalf("only %d segments", len(segs))
	}
	for _, s := range segs[:len(segs)-1] {
		b, _ := os.ReadFile(s.Path)
		if bytes.IndexByte(b, 0) >= 0 || len(b) == 0 || b[len(b)-1] != '\n' {
			t.Fatalf("rotated segment %s: %d bytes, records to %d", filepath.Base(s.Path), len(b), recordsEnd(b))
		}
	}
	j.Close()
	if rs := readChecked(t, dir); len(rs) != 102 {
		t.Fatalf("%d records", len(rs))
	}
}

// crashedSegment fakes what kill -9 can leave in the live segment: valid
// records, then a record whose bytes only partly reached the page cache
// (its newline did, bytes in its middle did not: a copy is not ordered),
// then zeros.
func crashedSegment(t *testing.T) (dir, path string, records int, pub []byte) {
	t.Helper()
	dir = t.TempDir()
	j := openTest(t, dir, nil)
	for i := 1; i <= 10; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	pub = j.PublicKey()
	j.Close()
	path, b := liveSegment(t, dir)
	holed := []byte(`{"ts":"2026-01-01T00:00:00Z","event":"statement","node":"node-a","seq":13,"prev_hash":"x","hash":"y"}` + "\n")
	for i := 20; i < 40; i++ {
		holed[i] = 0
	}
	b = append(b, holed...)
	b = append(b, make([]byte, 3*pageSize)...)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, path, 12, pub
}

// TestCrashedLiveSegment: readers stop at the first zero byte, verify calls
// the half-copied record torn (not tampering), and Open cuts it and the
// zeros off, saves the torn bytes and continues the chain.
func TestCrashedLiveSegment(t *testing.T) {
	dir, path, records, pub := crashedSegment(t)
	n := 0
	if err := ReadAll(dir, func(*record.Record) error { n++; return nil }); err != nil || n != records {
		t.Fatalf("ReadAll: %d records, want %d (%v)", n, records, err)
	}
	fl := NewFollower(dir, 0)
	got, err := fl.Next(1000, 1<<20)
	fl.Close()
	if err != nil || len(got) != records || fl.Skipped != 0 {
		t.Fatalf("follower: %d entries, %d skipped, %v", len(got), fl.Skipped, err)
	}
	rep, err := VerifyWith(dir, VerifyOptions{PublicKey: pub})
	if err != nil || !rep.OK {
		t.Fatalf("verify after a crash: %+v %v", rep.Problems, err)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Kind != ProblemTorn {
		t.Fatalf("half-copied record not reported as torn: %+v", rep.Warnings)
	}

	j := openTest(t, dir, nil)
	if j.Stats().RecoveredTorn != 1 {
		t.Fatal("torn record not recovered")
	}
	if err := j.Append(stmt(99)); err != nil {
		t.Fatal(err)
	}
	j.Close()
	if rs := readChecked(t, dir); len(rs) != records+3 {
		t.Fatalf("after recovery: %d records, want %d", len(rs), records+3)
	}
	torn, _ := filepath.Glob(path + ".torn-*")
	if len(torn) != 1 {
		t.Fatalf("torn bytes not saved: %v", torn)
	}
	if b, _ := os.ReadFile(torn[0]); !bytes.HasPrefix(b, []byte(`{"ts":"2026-01-01T00`)) || !bytes.HasSuffix(b, []byte(`"hash":"y"}`+"\n")) {
		t.Fatalf("saved torn bytes: %q", b)
	}
	rep, _ = VerifyWith(dir, VerifyOptions{PublicKey: pub})
	if !rep.OK || len(rep.Warnings) != 0 {
		t.Fatalf("after recovery: %+v %+v", rep.Problems, rep.Warnings)
	}
}

// TestFollowerWaitsForAHalfCopiedRecord: a record whose newline is visible
// before all its bytes are is not shipped (nor skipped) until it is whole.
func TestFollowerWaitsForAHalfCopiedRecord(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, nil)
	for i := 1; i <= 3; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	j.Close()
	path, full := liveSegment(t, dir)
	lines := bytes.SplitAfter(full, []byte("\n"))
	last := lines[len(lines)-2] // the close checkpoint
	start := len(full) - len(last)
	holed := append([]byte(nil), full...)
	for i := start + 10; i < start+30; i++ {
		holed[i] = 0
	}
	holed = append(holed, make([]byte, pageSize)...)
	if err := os.WriteFile(path, holed, 0o600); err != nil {
		t.Fatal(err)
	}
	fl := NewFollower(dir, 0)
	defer fl.Close()
	got, err := fl.Next(100, 1<<20)
	if err != nil || len(got) != 4 || fl.Skipped != 0 {
		t.Fatalf("before the record is whole: %d entries, %d skipped, %v", len(got), fl.Skipped, err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(full[start+10:start+30], int64(start+10)); err != nil {
		t.Fatal(err)
	}
	f.Close()
	got, err = fl.Next(100, 1<<20)
	if err != nil || len(got) != 1 || got[0].Seq != 5 || fl.Skipped != 0 || !bytes.Equal(append(got[0].Line, '\n'), last) {
		t.Fatalf("once whole: %+v, %d skipped, %v", got, fl.Skipped, err)
	}
}

// TestDiskFullRefusesAndResumes fills a small tmpfs under the journal: the
// journal refuses records (ErrJournal) when it cannot allocate the next
// chunk, keeps every record it acknowledged, and takes records again once
// space returns.
func TestDiskFullRefusesAndResumes(t *testing.T) {
	testutil.RequirePrivileged(t)
	for _, mode := range []string{SyncBatch, SyncAlways} {
		t.Run(mode, func(t *testing.T) { diskFullRefusesAndResumes(t, mode) })
	}
}

func diskFullRefusesAndResumes(t *testing.T, mode string) {
	mnt := t.TempDir()
	if err := syscall.Mount("tmpfs", mnt, "tmpfs", 0, "size=256k"); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(mnt, syscall.MNT_DETACH) })
	dir := filepath.Join(mnt, "audit")
	j, err := Open(Config{Dir: dir, Node: "node-a", Log: testLog(), CheckpointInterval: time.Hour, Sync: mode})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	filler := filepath.Join(mnt, "filler")
	out, _ := exec.Command("dd", "if=/dev/zero", "of="+filler, "bs=4k").CombinedOutput()
	if !strings.Contains(string(out), "No space left") {
		t.Fatalf("could not fill tmpfs: %s", out)
	}
	acked, refused := 0, 0
	for i := 1; i <= 2000 && refused == 0; i++ {
		err := j.Append(stmt(i))
		switch {
		case err == nil:
			acked = i
		case errors.Is(err, ErrJournal) && errors.Is(err, syscall.ENOSPC):
			refused = i
		default:
			t.Fatalf("append %d on a full disk: %v", i, err)
		}
	}
	if refused == 0 {
		t.Fatal("no record refused on a full file system")
	}
	if j.Healthy() == nil {
		t.Fatal("journal healthy on a full file system")
	}
	if err := j.Append(stmt(refused)); err == nil {
		t.Fatal("a second append on a full disk succeeded")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	for i := refused; i < refused+300; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatalf("append %d after space returned: %v", i, err)
		}
	}
	if j.Healthy() != nil {
		t.Fatalf("unhealthy after space returned: %v", j.Healthy())
	}
	pub := j.PublicKey()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyWith(dir, VerifyOptions{PublicKey: pub})
	if err != nil || !rep.OK || len(rep.Warnings) != 0 {
		t.Fatalf("verify: %+v %v", rep, err)
	}
	// every acknowledged statement is there, none twice, the refused one only once it was retried
	seen := map[uint64]int{}
	ReadAll(dir, func(r *record.Record) error {
		if r.Event == record.EventStatement {
			seen[r.StatementID]++
		}
		return nil
	})
	for i := 1; i < refused+300; i++ {
		if seen[uint64(i)] != 1 {
			t.Fatalf("statement %d recorded %d times (acked up to %d, refused %d)", i, seen[uint64(i)], acked, refused)
		}
	}
	t.Logf("acknowledged %d records on the full disk, refused #%d, resumed", acked, refused)
}

// TestCutSegment: when the live segment is cut short behind the journal's
// back, the journal finds it at its next sync and moves to a new segment;
// with sync always that is before the next record is acknowledged, which is
// refused with ErrJournal. Records written in between (sync batch) sit
// behind a hole that readers take for the end, and verify says so.
func TestCutSegment(t *testing.T) {
	for _, mode := range []string{SyncBatch, SyncAlways} {
		t.Run(mode, func(t *testing.T) { cutSegment(t, mode) })
	}
}

func cutSegment(t *testing.T, mode string) {
	dir := t.TempDir()
	j := openTest(t, dir, func(c *Config) { c.Sync = mode })
	if err := j.Append(stmt(1)); err != nil {
		t.Fatal(err)
	}
	path, _ := liveSegment(t, dir)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	err := j.Append(stmt(2))
	if mode == SyncAlways {
		if !errors.Is(err, ErrJournal) || !errors.Is(err, errPartialWrite) {
			t.Fatalf("append to a segment cut short: %v, want ErrJournal (partial write)", err)
		}
	} else if err != nil {
		t.Fatalf("append before the next sync: %v", err)
	}
	n := 3
	// 20s: the rotation may run late on a loaded machine.
	testutil.Eventually(t, 20*time.Second, func() error {
		if err := j.Append(stmt(n)); err != nil {
			t.Fatalf("append after the cut: %v", err)
		}
		n++
		if p, _ := liveSegment(t, dir); p == path {
			return errors.New("no new live segment: still writing to the one cut short")
		}
		return nil
	})
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := VerifyWith(dir, VerifyOptions{PublicKey: j.PublicKey()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.OK {
		t.Fatalf("verify passed over a journal cut behind its back: %+v", rep)
	}
	t.Logf("verify: %v", rep.Problems)
}

func TestSegmentAgeRotation(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, func(c *Config) { c.SegmentMaxAge = 30 * time.Millisecond; c.CheckpointInterval = 10 * time.Millisecond })
	// a checkpoint tick after the segment's age limit rotates it
	// 20s: checkpoint ticks may come late on a loaded machine.
	testutil.Eventually(t, 20*time.Second, func() error {
		segs, err := ListSegments(dir)
		if err != nil {
			return err
		}
		if len(segs) < 2 {
			return fmt.Errorf("no age rotation: %d segment(s)", len(segs))
		}
		return nil
	})
	j.Append(stmt(1))
	j.Close()
	rep, _ := VerifyWith(dir, VerifyOptions{PublicKey: j.PublicKey()})
	if !rep.OK {
		t.Fatalf("verify after rotation: %v", rep.Problems)
	}
}

// TestSegmentBlocksWrittenInSyncAlways: in sync always the live segment's
// allocated blocks are written (with zeros) before records land in them, so
// the fdatasync a statement waits for carries no extent conversion; sync
// batch leaves fallocate's unwritten extents, which is also what shows that
// this file system reports them at all.
func TestSegmentBlocksWrittenInSyncAlways(t *testing.T) {
	unwritten := map[string]int{}
	for _, mode := range []string{SyncBatch, SyncAlways} {
		dir := t.TempDir()
		j := openTest(t, dir, func(c *Config) { c.Sync = mode })
		for i := range 50 {
			if err := j.Append(stmt(i)); err != nil {
				t.Fatal(err)
			}
		}
		if err := j.Sync(); err != nil {
			t.Fatal(err)
		}
		path, _ := liveSegment(t, dir)
		exts, err := fileExtents(path)
		if err != nil {
			testutil.Unavailable(t, "the file system of %s does not report extents: %v", dir, err)
		}
		for _, e := range exts {
			if e.flags&fiemapExtentUnwritten != 0 {
				unwritten[mode]++
			}
		}
		t.Logf("%s: %d extents, %d unwritten", mode, len(exts), unwritten[mode])
	}
	if unwritten[SyncBatch] == 0 {
		testutil.Unavailable(t, "fallocate left no unwritten extent here: written and unwritten blocks cannot be told apart")
	}
	if unwritten[SyncAlways] != 0 {
		t.Errorf("sync always: %d unwritten extents in the live segment; want its allocated blocks written", unwritten[SyncAlways])
	}
}

// FIEMAP (linux/fiemap.h), which golang.org/x/sys does not define.
const (
	fsIocFiemap           = 0xC020660B
	fiemapFlagSync        = 0x1
	fiemapExtentUnwritten = 0x800
	fiemapExtentLast      = 0x1
)

type fiemapExtent struct {
	logical, physical, length uint64
	_                         [2]uint64
	flags                     uint32
	_                         [3]uint32
}

type fiemap struct {
	start, length                   uint64
	flags, mapped, count, _reserved uint32
	extents                         [64]fiemapExtent
}

// fileExtents maps path's blocks (after writing its dirty pages back).
func fileExtents(path string) ([]fiemapExtent, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []fiemapExtent
	m := &fiemap{}
	for {
		m.length, m.flags, m.count = ^uint64(0)-m.start, fiemapFlagSync, uint32(len(m.extents))
		if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, f.Fd(), fsIocFiemap, uintptr(unsafe.Pointer(m))); e != 0 {
			return nil, e
		}
		if m.mapped == 0 {
			return out, nil
		}
		out = append(out, m.extents[:m.mapped]...)
		last := m.extents[m.mapped-1]
		if last.flags&fiemapExtentLast != 0 {
			return out, nil
		}
		m.start = last.logical + last.length
	}
}
