package audit

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"syscall"
)

// segmentChunk is how far ahead of the records the live segment's blocks
// are allocated: one fallocate per chunk.
const segmentChunk = 1 << 20

// segmentFile is the live segment. Its blocks are allocated ahead of the
// records (fallocate), so an fdatasync after a batch has no file size or
// block map to commit, only the data.
//
// When mapped (sync batch and none), the file is mapped MAP_SHARED and
// appending a batch is a copy into the page cache: no system call, and a
// process crash keeps what was copied just as it keeps what write(2)
// returned. With sync always the batch is written with pwrite instead: an
// fdatasync after every batch write-protects the page again, and the next
// copy into it would take a fault that costs more than the pwrite.
//
// The file is therefore longer than its records while it is written: the
// rest is zero bytes. Records never contain a zero byte (JSON escapes it),
// so readers take the first zero byte as the end of what has been written
// (see recordsEnd). On rotation and on Close the file is cut to its records.
//
// Nothing is ever copied past what was allocated: a store into a mapped
// page that has no block behind it (a sparse file on a full disk) would be
// SIGBUS. A full disk shows up as fallocate's ENOSPC instead, before any
// byte of the batch is written, and the batch is refused.
type segmentFile struct {
	f     *os.File
	mem   []byte // MAP_SHARED mapping of the file from offset 0, if mapped
	size  int64  // end of the records
	alloc int64  // bytes allocated: the file's size
	// released: pages below this offset were dropped from the mapping
	// (they stay in the page cache) to keep the daemon's RSS small.
	released int64
}

var pageSize = int64(os.Getpagesize())

func roundUp(n, to int64) int64 { return (n + to - 1) / to * to }

// openSegmentFile opens (or creates) path for appending after its first
// size bytes; anything after them (a zero tail, a torn record) is cut off.
// reserve is how much address space to map up front; 0 means not mapped.
func openSegmentFile(path string, size, reserve int64) (*segmentFile, error) {
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
	m := &segmentFile{f: f, size: size, alloc: size}
	if reserve > 0 {
		if err := m.remap(max(reserve, size+segmentChunk)); err != nil {
			f.Close()
			return nil, err
		}
	}
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

// remap maps at least n bytes of the file.
func (m *segmentFile) remap(n int64) error {
	n = roundUp(n, pageSize)
	if m.mem != nil {
		if err := syscall.Munmap(m.mem); err != nil {
			return fmt.Errorf("unmap segment: %w", err)
		}
		m.mem = nil
	}
	mem, err := syscall.Mmap(int(m.f.Fd()), 0, int(n), syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
	if err != nil {
		return fmt.Errorf("map segment: %w", err)
	}
	m.mem = mem
	m.released = 0 // a fresh mapping has nothing resident
	return nil
}

// append writes p after the records, allocating blocks first if needed.
// On error nothing of p was written, except after a fault (see copyIn) or a
// short pwrite, which leave the segment unusable (errPartialWrite).
func (m *segmentFile) append(p []byte) error {
	need := m.size + int64(len(p))
	if need > m.alloc {
		if err := m.grow(need); err != nil {
			return err
		}
	}
	if m.mem != nil {
		if err := copyIn(m.mem[m.size:need], p); err != nil {
			return err
		}
	} else if n, err := m.f.WriteAt(p, m.size); err != nil {
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
	m.alloc = target
	if m.mem == nil {
		return nil
	}
	if target > int64(len(m.mem)) {
		if err := m.remap(target + segmentChunk); err != nil {
			return err
		}
	}
	m.releaseBehind()
	return nil
}

// allocate gives the file real blocks up to size (and that size).
func (m *segmentFile) allocate(size int64) error {
	fd := int(m.f.Fd())
	err := syscall.Fallocate(fd, 0, m.alloc, size-m.alloc)
	if errors.Is(err, syscall.EOPNOTSUPP) {
		// no fallocate on this file system: write the zeros instead
		err = writeZeros(m.f, m.alloc, size)
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

// releaseBehind drops the pages below the one being filled from the
// mapping (called once per chunk). They stay in the page cache, and dirty
// ones are still written back; only the daemon's resident set stops
// counting them.
func (m *segmentFile) releaseBehind() {
	upTo := m.size / pageSize * pageSize
	if upTo <= m.released {
		return
	}
	if err := syscall.Madvise(m.mem[m.released:upTo], syscall.MADV_DONTNEED); err == nil {
		m.released = upTo
	}
}

// errPartialWrite: part of a batch may be in the segment (a copy into the
// mapping faulted, a pwrite was cut short); the segment must be abandoned.
var errPartialWrite = errors.New("partial write to segment")

// copyIn copies src into the mapping. A fault (the kernel could not back a
// mapped page after all) becomes an error instead of killing the process.
func copyIn(dst, src []byte) (err error) {
	old := debug.SetPanicOnFault(true)
	defer func() {
		debug.SetPanicOnFault(old)
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: fault in mapped segment: %v", errPartialWrite, r)
		}
	}()
	copy(dst, src)
	return nil
}

// sync makes the records durable (fdatasync: the blocks and the file size
// were settled by allocate, so this usually writes data only).
func (m *segmentFile) sync() error {
	if err := syscall.Fdatasync(int(m.f.Fd())); err != nil {
		return fmt.Errorf("sync journal: %w", err)
	}
	return nil
}

// close cuts the file to its records, syncs it (when sync is set) and
// closes it.
func (m *segmentFile) close(sync bool) error {
	var errs []error
	if m.mem != nil {
		if err := syscall.Munmap(m.mem); err != nil {
			errs = append(errs, fmt.Errorf("unmap segment: %w", err))
		}
		m.mem = nil
	}
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
