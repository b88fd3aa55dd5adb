package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
)

// segmentChunk is how far ahead of the records the live segment's blocks
// are allocated: one fallocate per chunk.
const segmentChunk = 1 << 20

// segmentFile is the live segment. Its blocks are allocated ahead of the
// records (fallocate), so an fdatasync after a batch has no file size to
// commit, and a full disk is found before a record is written. A batch is
// one pwrite into the allocated blocks, whatever the sync mode: a process
// crash keeps what pwrite returned (it is in the page cache).
//
// fallocate leaves unwritten extents on ext4 and XFS, and an fdatasync
// after the first write into one commits its conversion to the file
// system's journal as well as the data. With zeroed set (sync always, where
// every statement waits for an fdatasync) the allocated blocks are also
// written with zeros, so the conversion happens once per chunk and the
// records' fdatasyncs carry only data: a third less time per fdatasync and
// 10–21 % more statements per second at 8 threads, for writing each segment
// twice (docs/bench.md). In sync batch one fdatasync per window
// gains nothing measurable from it, so the blocks are left unwritten.
//
// The segment used to be mapped for sync batch and none, a batch being a
// copy into the mapping. Under load that cost more than the system call it
// saved: the first store to each page, and to a page the background
// fdatasync had write-protected again, is a page fault through the file
// system (about a third more daemon CPU per point select at 8 threads,
// docs/bench.md).
//
// The file is therefore longer than its records while it is written: the
// rest is zero bytes. Records never contain a zero byte (JSON escapes it),
// so readers take the first zero byte as the end of what has been written
// (see recordsEnd). On rotation and on Close the file is cut to its records.
//
// A full disk shows up as fallocate's ENOSPC, before any byte of the batch
// is written, and the batch is refused.
type segmentFile struct {
	f      *os.File
	size   int64 // end of the records
	zeroed bool  // allocate writes zeros into the blocks it allocates
	// alloc is the bytes allocated (the file's size); atomic because sync
	// reads it beside the writer.
	alloc atomic.Int64
}

var pageSize = int64(os.Getpagesize())

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// openSegmentFile opens (or creates) path for appending after its first
// size bytes; anything after them (a zero tail, a torn record) is cut off.
// zeroed: see segmentFile.
func openSegmentFile(path string, size int64, zeroed bool) (*segmentFile, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open segment: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat segment: %w", err)
	}
	if fi.Size() < size {
		f.Close()
		return nil, fmt.Errorf("open segment %s: %d bytes, expected at least %d", path, fi.Size(), size)
	}
	if fi.Size() > size {
		if err := f.Truncate(size); err != nil {
			f.Close()
			return nil, fmt.Errorf("truncate segment: %w", err)
		}
	}
	m := &segmentFile{f: f, size: size, zeroed: zeroed}
	m.alloc.Store(size)
	return m, nil
}

// existingRecords returns where the records of an existing segment end
// (0 for a new one): after its last complete line.
func existingRecords(path string) (int64, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read segment: %w", err)
	}
	data = data[:recordsEnd(data)]
	return int64(bytes.LastIndexByte(data, '\n') + 1), nil
}

// append writes p after the records, allocating blocks first if needed.
// On error nothing of p was written, except after a short pwrite, which
// leaves the segment unusable (errPartialWrite).
func (m *segmentFile) append(p []byte) error {
	need := m.size + int64(len(p))
	if need > m.alloc.Load() {
		if err := m.grow(need); err != nil {
			return err
		}
	}
	if n, err := m.f.WriteAt(p, m.size); err != nil {
		if n > 0 {
			return fmt.Errorf("%w: %w", errPartialWrite, err)
		}
		return err
	}
	m.size = need
	return nil
}

// grow allocates blocks up to at least need: a whole chunk ahead when the
// disk has room, else just what the batch needs (a nearly full disk still
// takes the records that fit).
func (m *segmentFile) grow(need int64) error {
	target := roundUp(need, segmentChunk)
	err := m.allocate(target)
	if errors.Is(err, syscall.ENOSPC) && roundUp(need, pageSize) < target {
		target = roundUp(need, pageSize)
		err = m.allocate(target)
	}
	if err != nil {
		return err
	}
	m.alloc.Store(target)
	return nil
}

// allocate gives the file real blocks up to size (and that size).
func (m *segmentFile) allocate(size int64) error {
	fd := int(m.f.Fd())
	from := m.alloc.Load()
	err := syscall.Fallocate(fd, 0, from, size-from)
	if errors.Is(err, syscall.EOPNOTSUPP) || (err == nil && m.zeroed) {
		// no fallocate on this file system, or blocks to turn from
		// unwritten to written: write the zeros
		err = writeZeros(m.f, from, size)
	}
	if err != nil {
		return fmt.Errorf("allocate journal segment: %w", err)
	}
	return nil
}

var zeroChunk [64 << 10]byte

func writeZeros(f *os.File, from, to int64) error {
	for from < to {
		n := min(to-from, int64(len(zeroChunk)))
		w, err := f.WriteAt(zeroChunk[:n], from)
		from += int64(w)
		if err != nil {
			return err
		}
	}
	return nil
}

// errPartialWrite: part of a batch may be in the segment (a pwrite was cut
// short), or the segment itself was cut; it must be abandoned.
var errPartialWrite = errors.New("partial write to segment")

// sync makes the records durable (fdatasync: the blocks and the file size
// were settled by allocate, so this usually writes data only).
//
// It also checks that nobody cut the segment short behind the journal's
// back (by hand, by another process): pwrite would go on writing after the
// cut, behind a hole of zeros that every reader takes for the end. The check
// is one fstat per sync, not per batch (a system call costs microseconds
// here); a cut found is errPartialWrite, and the journal moves to a new
// segment. Records written between the cut and the check sit behind the
// hole, and `audit verify` reports them missing.
func (m *segmentFile) sync() error {
	fd := int(m.f.Fd())
	if err := syscall.Fdatasync(fd); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(fd, &st); err != nil {
		return fmt.Errorf("stat journal segment: %w", err)
	}
	if st.Size < m.alloc.Load() {
		return fmt.Errorf("%w: the segment was cut to %d bytes behind the journal", errPartialWrite, st.Size)
	}
	return nil
}

// close cuts the file to its records, syncs it (when sync is set) and
// closes it.
func (m *segmentFile) close(sync bool) error {
	var errs []error
	// cut the zero tail (never extend a file someone else cut short)
	if fi, err := m.f.Stat(); err != nil {
		errs = append(errs, fmt.Errorf("stat segment: %w", err))
	} else if fi.Size() > m.size {
		if err := m.f.Truncate(m.size); err != nil {
			errs = append(errs, fmt.Errorf("truncate segment: %w", err))
		}
	}
	if sync {
		if err := m.f.Sync(); err != nil {
			errs = append(errs, fmt.Errorf("sync journal: %w", err))
		}
	}
	if err := m.f.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close journal: %w", err))
	}
	return errors.Join(errs...)
}
