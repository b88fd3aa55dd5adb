package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// ErrJournal wraps every error Append returns because the journal could not
// be written; the proxy refuses the statement when errors.Is(err, ErrJournal).
var ErrJournal = errors.New("audit journal unavailable")

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("audit journal closed")

// Journal is the append-only, hash-chained, write-ahead audit journal.
//
// Append is safe for concurrent use. Records are encoded outside the lock;
// under the lock they only get their seq and prev_hash spliced in and are
// hashed into a shared pending buffer. The first waiting appender becomes the
// writer: it takes the whole pending buffer and writes it to the live
// segment — one pwrite, and in sync=always one fdatasync — for every record
// that queued up meanwhile, then wakes the others (group commit, no
// goroutine hand-off on the hot path). With a ring (sync=batch, RingDir) a
// record copied into the ring waits for no write: the background loop
// writes the pending buffer once per batch window.
type Journal struct {
	cfg    Config
	log    *slog.Logger
	key    ed25519.PrivateKey
	keyID  string
	lockF  *os.File
	always bool

	mu   sync.Mutex
	cond *sync.Cond

	// chain state, under mu
	seq  uint64
	head string

	// last record known written, under mu
	writtenSeq  uint64
	writtenHead string

	// logical byte offsets (monotonic, never reused), under mu
	pending  []byte
	spare    []byte
	appended int64
	written  int64 // writes resolved (succeeded or failed) up to here
	synced   int64
	failed   []span // resolved-but-failed ranges
	writing  bool
	closed   bool
	lastErr  error

	// owned by the writer (writing==true); swapping m, and syncing it, under syncMu
	syncMu    sync.Mutex
	m         *segmentFile
	seg       Segment
	segOpened time.Time
	broken    bool // current segment may end in a partial write: rotate first
	rotateDue atomic.Bool

	// ring, when set (sync=batch with Config.RingDir), is the write-ahead
	// step instead of a pwrite per statement (ring.go). Under mu: a record
	// is copied into it, and Append returns without waiting for the write,
	// when it ends at or before ringLimit (so the ring and the live
	// segment's allocated blocks both have room for every record not yet
	// written) and no record since the last write went without a copy
	// (ringGap: recovery follows the chain, and a hole would end it there).
	ring      *ring
	ringLimit int64
	ringGap   int64
	// the last record copied into the ring: the records of a batch that
	// are in the ring are its first ones, up to staged (see
	// writeBatchLocked)
	staged chained

	// syncKick asks the background loop to fdatasync within BatchWindow
	// (sync=batch).
	syncKick kick
	// flushKick asks the background loop to write records appended with
	// AppendAsync that no synchronous Append has carried out yet.
	flushKick kick
	done      chan struct{}
	wg        sync.WaitGroup

	subsMu sync.Mutex
	subs   []chan struct{}

	shippers []*Shipper

	stats journalCounters
}

type span struct{ lo, hi int64 } // (lo, hi]

type journalCounters struct {
	records, bytes, writes, syncs, writeErrors, syncErrors, dropped, checkpoints, segments, recovered atomic.Uint64
}

// Stats is a snapshot of journal counters for metrics.
type Stats struct {
	Records       uint64 // records appended (including checkpoints)
	Bytes         uint64 // bytes written
	Writes        uint64 // batches copied into the segment (records/Writes = group commit factor)
	Syncs         uint64 // fdatasync calls
	WriteErrors   uint64
	SyncErrors    uint64
	Dropped       uint64 // records lost because of write errors with FailOpen
	Checkpoints   uint64
	Segments      uint64 // segments opened by this process
	RecoveredTorn uint64 // torn tails truncated on Open
	LastSeq       uint64
	UnsyncedBytes int64 // written but not yet fsynced
	PendingBytes  int64 // appended but not yet written
	Sinks         []SinkStats
}

// Open opens (or creates) the journal in cfg.Dir, recovers a torn final
// record left by a crash, loads or creates the checkpoint key, writes an
// opening checkpoint and starts the background syncer, checkpointer and sinks.
func Open(c Config) (*Journal, error) {
	cfg, err := c.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("create audit dir: %w", err)
	}
	lockF, err := os.OpenFile(filepath.Join(cfg.Dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open journal lock: %w", err)
	}
	if err := syscall.Flock(int(lockF.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lockF.Close()
		return nil, fmt.Errorf("lock audit dir %s (another sqlwarden running?): %w", cfg.Dir, err)
	}
	j := &Journal{
		cfg:       cfg,
		log:       cfg.Log,
		lockF:     lockF,
		always:    cfg.Sync == SyncAlways,
		syncKick:  newKick(),
		flushKick: newKick(),
		done:      make(chan struct{}),
	}
	j.cond = sync.NewCond(&j.mu)
	ok := false
	defer func() {
		if !ok {
			if j.m != nil {
				j.m.close(false)
			}
			if j.ring != nil {
				j.ring.close(false)
			}
			lockF.Close()
		}
	}()
	key, created, err := LoadOrCreateKey(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	j.key = key
	j.keyID = KeyID(key.Public().(ed25519.PublicKey))
	if created {
		j.log.Info("created checkpoint signing key", "key", cfg.KeyFile, "public_key", cfg.KeyFile+".pub", "key_id", j.keyID)
	}

	segs, err := ListSegments(cfg.Dir)
	if err != nil {
		return nil, err
	}
	st, err := readTail(segs)
	if err != nil {
		return nil, err
	}
	j.seq, j.head = st.lastSeq, st.lastHash
	j.writtenSeq, j.writtenHead = st.lastSeq, st.lastHash
	openReason := "open"
	switch {
	case st.seg.Path == "":
		// empty journal: first segment created below
	case st.conflict:
		j.log.Error("journal segment has invalid records followed by valid ones; leaving it for audit verify and starting a new segment",
			"segment", st.seg.Path)
		openReason = "open: previous segment damaged"
	case st.tornBytes > 0:
		tornPath := st.seg.Path + fmt.Sprintf(".torn-%d", cfg.Clock().UnixNano())
		if err := os.WriteFile(tornPath, st.torn, 0o600); err != nil {
			j.log.Warn("save torn tail", "err", err)
		}
		// the segment is cut to st.size when it is opened below
		j.stats.recovered.Add(1)
		j.log.Warn("recovered torn final record after a crash", "segment", st.seg.Path,
			"torn_bytes", st.tornBytes, "last_seq", st.lastSeq, "saved", tornPath)
		openReason = fmt.Sprintf("recovered: truncated torn final record (%d bytes) after seq %d", st.tornBytes, st.lastSeq)
	}
	if st.seg.Path != "" && !st.conflict && st.seg.FirstSeq <= st.lastSeq+1 {
		j.segOpened = cfg.Clock()
		if fi, err := os.Stat(st.seg.Path); err == nil && st.size > 0 {
			j.segOpened = fi.ModTime() // age counts from the segment's last write at worst
		}
		// cuts off a torn record and the zero tail a crash left behind
		m, err := openSegmentFile(st.seg.Path, st.size, j.always)
		if err != nil {
			return nil, err
		}
		j.m, j.seg = m, st.seg
	} else if err := j.rotate(); err != nil {
		return nil, err
	}

	if dir := resolveRingDir(cfg.RingDir); dir != "" && cfg.Sync == SyncBatch {
		n, err := j.openRing(dir)
		if err != nil {
			return nil, err
		}
		if n > 0 {
			openReason += fmt.Sprintf("; replayed %d records from the ring after a crash", n)
		}
	} else if cfg.RingDir != "" && cfg.RingDir != RingOff && cfg.RingDir != RingAuto {
		j.log.Warn("audit.ring_dir applies to sync: batch only; records are written before Append returns", "sync", cfg.Sync)
	}

	j.wg.Add(1)
	go j.background()
	if err := j.appendCheckpoint(openReason, false); err != nil {
		close(j.done)
		j.wg.Wait()
		return nil, fmt.Errorf("write opening checkpoint: %w", err)
	}
	for _, sc := range cfg.Sinks {
		sh, err := newShipper(j, sc)
		if err != nil {
			close(j.done)
			j.wg.Wait()
			return nil, err
		}
		j.shippers = append(j.shippers, sh)
	}
	for _, sh := range j.shippers {
		sh.start()
	}
	ok = true
	return j, nil
}

// Config returns the effective configuration (defaults applied).
func (j *Journal) Config() Config { return j.cfg }

// PublicKey returns the checkpoint verification key.
func (j *Journal) PublicKey() ed25519.PublicKey { return j.key.Public().(ed25519.PublicKey) }

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// maxKeptBuffer bounds the encoding and batch buffers kept for reuse: one a
// huge record grew (a 64 MiB statement) goes back to the system instead.
const maxKeptBuffer = 1 << 20

func putBuf(b *bytes.Buffer) {
	if b.Cap() <= maxKeptBuffer {
		bufPool.Put(b)
	}
}

// Append writes r to the journal. It assigns Seq, PrevHash, Hash (and Node
// and TS if unset) and returns once the record is in the page cache (a
// process crash keeps it) — or, with a ring, in the ring, which the next
// Open replays — or, with sync=always, once an fdatasync covering it has
// returned. A journal failure returns an error wrapping ErrJournal,
// unless FailOpen is set.
func (j *Journal) Append(r *record.Record) error {
	c, err := j.chain(r)
	if err != nil {
		return err
	}
	if c.staged {
		// in the ring: as safe from a crash as in the page cache
		j.mu.Unlock()
		j.flushKick.send()
		return nil
	}
	err = j.commitLocked(c.end)
	j.mu.Unlock()
	if err != nil {
		if j.cfg.FailOpen {
			j.stats.dropped.Add(1)
			return nil
		}
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	return nil
}

// chained is where appendLocked put a record.
type chained struct {
	end    int64 // logical end offset
	seq    uint64
	prev   string
	hash   string
	staged bool // copied into the ring
}

// chain stamps and encodes r and chains it into the pending buffer. On
// success it returns where the record went, with j.mu held.
func (j *Journal) chain(r *record.Record) (chained, error) {
	if r.TS.IsZero() {
		r.TS = j.cfg.Clock()
	}
	r.TS = r.TS.UTC()
	if r.Node == "" {
		r.Node = j.cfg.Node
	}
	buf := bufPool.Get().(*bytes.Buffer)
	defer putBuf(buf)
	buf.Reset()
	body, err := encodeBody(buf, r)
	if err != nil {
		return chained{}, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return chained{}, fmt.Errorf("%w: %w", ErrJournal, ErrClosed)
	}
	c, err := j.appendLocked(body)
	if err != nil {
		j.mu.Unlock()
		return chained{}, fmt.Errorf("%w: %w", ErrJournal, err)
	}
	r.Seq, r.PrevHash, r.Hash = c.seq, c.prev, c.hash
	return c, nil
}

// appendLocked chains body into the pending buffer, and into the ring when
// it has room (see Journal.ring).
func (j *Journal) appendLocked(body []byte) (chained, error) {
	c := chained{seq: j.seq + 1, prev: j.head}
	start := len(j.pending)
	var err error
	j.pending, err = spliceInto(j.pending, body, c.seq, c.prev)
	if err != nil {
		j.pending = j.pending[:start]
		return chained{}, err
	}
	sum := sha256.Sum256(j.pending[start:])
	j.pending = appendHashSuffix(j.pending, sum)
	line := j.pending[start:]
	c.hash = string(line[len(line)-3-64 : len(line)-3]) // before `"}\n`
	j.seq, j.head = c.seq, c.hash
	from := j.appended
	j.appended += int64(len(line))
	c.end = j.appended
	if j.ring != nil {
		if j.ringGap <= j.written && c.end <= j.ringLimit {
			j.ring.put(from, line)
			c.staged = true
			j.staged = c
		} else {
			j.ringGap = c.end
		}
	}
	j.stats.records.Add(1)
	return c, nil
}

// AppendAsync chains r into the journal like Append but does not wait for
// it to be written: it goes out with the next record that waits, or from the
// background loop within BatchWindow. It is for records nothing is held back
// for (outcomes, session ends): a crash can lose the last BatchWindow of
// them, never a record written with Append. Errors are only encoding
// errors; a failed write of an async record is counted, logged and, as for
// every failed write, rolls the chain back so it stays verifiable.
func (j *Journal) AppendAsync(r *record.Record) error {
	if _, err := j.chain(r); err != nil {
		return err
	}
	if len(j.pending) >= 256<<10 && !j.writing {
		j.writeBatchLocked()
	}
	j.mu.Unlock()
	j.flushKick.send()
	return nil
}

// flushPending writes records appended asynchronously.
func (j *Journal) flushPending() {
	j.mu.Lock()
	defer j.mu.Unlock()
	for len(j.pending) > 0 && !j.closed {
		if j.writing {
			j.cond.Wait()
			continue
		}
		j.writeBatchLocked()
	}
}

// commitLocked waits (becoming the writer if nobody is) until the record
// ending at end is written (and synced in sync=always). Called with mu held.
func (j *Journal) commitLocked(end int64) error {
	for {
		if j.written >= end && (!j.always || j.synced >= end || j.isFailed(end)) {
			if j.isFailed(end) {
				if j.lastErr != nil {
					return j.lastErr
				}
				return errors.New("write journal: failed")
			}
			return nil
		}
		if !j.writing {
			j.writeBatchLocked()
			continue
		}
		j.cond.Wait()
	}
}

func (j *Journal) isFailed(end int64) bool {
	for i := len(j.failed) - 1; i >= 0; i-- {
		if end > j.failed[i].lo && end <= j.failed[i].hi {
			return true
		}
	}
	return false
}

func (j *Journal) markFailed(lo, hi int64) {
	if hi <= lo {
		return
	}
	if len(j.failed) >= 256 {
		copy(j.failed, j.failed[128:])
		j.failed = j.failed[:len(j.failed)-128]
	}
	j.failed = append(j.failed, span{lo, hi})
}

// writeBatchLocked takes the pending buffer, writes it with mu released and
// publishes the result. Called with mu held and writing == false.
func (j *Journal) writeBatchLocked() {
	j.writing = true
	batch := j.pending
	j.pending = j.spare[:0]
	lo, hi := j.written, j.appended
	lastSeq, lastHead := j.seq, j.head
	firstSeq := j.writtenSeq + 1
	// With a ring, the batch begins with the records Append acknowledged
	// from it: they are written first, into blocks allocated for them
	// (ringRoom), so that a failure of the rest — a full disk when the
	// segment must grow — fails only records whose Append is waiting, or
	// that nothing waits for.
	var pre int
	var preSeq uint64
	var preHead string
	if j.ring != nil && j.staged.end > lo {
		pre, preSeq, preHead = int(j.staged.end-lo), j.staged.seq, j.staged.hash
	}
	j.mu.Unlock()

	var werr error
	done := 0 // bytes of the batch written
	if pre > 0 {
		if werr = j.writeOut(batch[:pre], firstSeq, true); werr == nil {
			done, firstSeq = pre, preSeq+1
		}
	}
	if werr == nil && done < len(batch) {
		if werr = j.writeOut(batch[done:], firstSeq, false); werr == nil {
			done = len(batch)
		}
	}
	var serr error
	var synced bool
	if werr == nil && j.always {
		serr = j.syncFile()
		synced = serr == nil
		if serr != nil {
			j.broken = true // the page cache may have dropped data: new segment
		}
	}

	j.mu.Lock()
	j.spare = nil
	if cap(batch) <= maxKeptBuffer {
		j.spare = batch[:0] // not the buffer a huge record grew
	}
	j.writing = false
	switch {
	case werr != nil:
		// The batch (but its records from the ring, when they were
		// written) and every record chained after it are lost: roll the
		// chain back to the last written record and fail them all.
		if done > 0 {
			j.writtenSeq, j.writtenHead = preSeq, preHead
			lo += int64(done)
		}
		j.lastErr = werr
		j.stats.writeErrors.Add(1)
		j.log.Error("write audit journal", "err", werr, "records_failed", j.seq-j.writtenSeq)
		j.markFailed(lo, j.appended)
		if j.ring != nil {
			// their seqs are given again: no copy may be replayed
			j.ring.clear(lo, j.appended)
		}
		j.seq, j.head = j.writtenSeq, j.writtenHead
		j.pending = j.pending[:0]
		j.written = j.appended
		j.synced = max(j.synced, j.appended) // failed bytes count as resolved
	default:
		j.written = hi
		j.writtenSeq, j.writtenHead = lastSeq, lastHead
		if j.always {
			if synced {
				j.synced = hi
				j.lastErr = nil
			} else {
				j.lastErr = serr
				j.markFailed(lo, hi)
				j.synced = hi
			}
		} else {
			j.lastErr = nil
		}
	}
	if j.ring != nil {
		j.ringLimit = j.written + j.ringRoom(werr == nil)
	}
	j.cond.Broadcast()
	if done > 0 {
		if !j.always && j.cfg.Sync == SyncBatch {
			j.syncKick.send()
		}
		j.notify()
	}
}

// writeOut writes one batch to the current segment, rotating first if the
// segment is full, old or possibly damaged. Runs with mu released, as the
// single writer. Records Append acknowledged from the ring (staged) go into
// the current segment, whose blocks were allocated ahead for them, even when
// it is due to rotate for its age or size (the rest of the batch rotates);
// only a damaged segment is left for a new one.
func (j *Journal) writeOut(batch []byte, firstSeq uint64, staged bool) error {
	due := j.broken || j.m == nil
	if !due && !staged {
		due = j.m.size >= j.cfg.SegmentMaxBytes || j.rotateDue.Load()
	}
	if due {
		if err := j.rotateAt(firstSeq); err != nil {
			j.broken = true
			return err
		}
	}
	if j.cfg.WriteHook != nil {
		if err := j.cfg.WriteHook(batch); err != nil {
			return fmt.Errorf("write journal: %w", err)
		}
	}
	if err := j.m.append(batch); err != nil {
		if errors.Is(err, errPartialWrite) {
			j.broken = true // part of the batch may be in the segment: cut it off in a new one
		}
		return fmt.Errorf("write journal: %w", err)
	}
	j.stats.writes.Add(1)
	j.stats.bytes.Add(uint64(len(batch)))
	return nil
}

func (j *Journal) rotate() error { return j.rotateAt(j.writtenSeq + 1) }

// rotateAt closes the current segment (cut to its records, after an fsync
// unless sync=none) and opens a new one named after firstSeq.
func (j *Journal) rotateAt(firstSeq uint64) error {
	seg := Segment{Path: filepath.Join(j.cfg.Dir, SegmentName(firstSeq)), FirstSeq: firstSeq}
	if j.m != nil && seg.Path == j.seg.Path {
		// nothing was written since the segment was created (or a failed
		// write was truncated away); reuse it unless it is damaged
		if !j.broken {
			j.rotateDue.Store(false)
			return nil
		}
		// a damaged segment holding no valid record: start a sibling
		seg.Path = filepath.Join(j.cfg.Dir, fmt.Sprintf("%s%020d-%d%s", segmentPrefix, firstSeq, j.cfg.Clock().UnixNano(), segmentSuffix))
	}
	size, err := existingRecords(seg.Path)
	if err != nil {
		return err
	}
	m, err := openSegmentFile(seg.Path, size, j.always)
	if err != nil {
		return err
	}
	if j.cfg.Sync != SyncNone {
		if err := syncDir(j.cfg.Dir); err != nil {
			m.close(false)
			return fmt.Errorf("sync audit dir: %w", err)
		}
	}
	j.syncMu.Lock()
	old := j.m
	j.m, j.seg, j.segOpened = m, seg, j.cfg.Clock()
	j.syncMu.Unlock()
	j.broken = false
	j.rotateDue.Store(false)
	j.stats.segments.Add(1)
	if old != nil {
		if err := old.close(j.cfg.Sync != SyncNone); err != nil {
			j.log.Error("close rotated segment", "err", err)
		}
	}
	return nil
}

// syncFile fdatasyncs the current segment and reports the duration.
func (j *Journal) syncFile() error {
	j.syncMu.Lock()
	t0 := time.Now()
	err := j.m.sync()
	j.syncMu.Unlock()
	d := time.Since(t0)
	j.stats.syncs.Add(1)
	if j.cfg.SyncObserver != nil {
		j.cfg.SyncObserver(d)
	}
	if err != nil {
		j.stats.syncErrors.Add(1)
		return err
	}
	return nil
}

// background runs the batch syncer, the checkpoint timer and age rotation.
func (j *Journal) background() {
	defer j.wg.Done()
	cp := time.NewTicker(j.cfg.CheckpointInterval)
	defer cp.Stop()
	var syncTimer, flushTimer *time.Timer
	var syncC, flushC <-chan time.Time
	for {
		select {
		case <-j.done:
			if syncTimer != nil {
				syncTimer.Stop()
			}
			if flushTimer != nil {
				flushTimer.Stop()
			}
			return
		case <-j.flushKick.c:
			if flushC == nil {
				flushTimer = time.NewTimer(j.cfg.BatchWindow)
				flushC = flushTimer.C
			}
		case <-flushC:
			flushC = nil
			j.flushKick.disarm()
			j.flushPending()
			if j.ring != nil {
				// records acknowledged from the ring: on disk within one
				// batch window (and an fdatasync), as with a pwrite each
				j.batchSync()
			}
		case <-j.syncKick.c:
			if syncC == nil {
				syncTimer = time.NewTimer(j.cfg.BatchWindow)
				syncC = syncTimer.C
			}
		case <-syncC:
			syncC = nil
			j.syncKick.disarm()
			j.batchSync()
		case <-cp.C:
			if j.cfg.Clock().Sub(j.segOpenedAt()) >= j.cfg.SegmentMaxAge {
				j.rotateDue.Store(true)
			}
			if err := j.appendCheckpoint("", false); err != nil && !errors.Is(err, ErrClosed) {
				j.log.Error("write checkpoint", "err", err)
			}
		}
	}
}

// A kick wakes the background loop once per timer it arms: the first send
// after a disarm wakes the loop, later sends are an atomic load and nothing
// else. Without it every statement woke the loop (a goroutine wake-up, often
// a thread's) only for it to find its timer already running.
type kick struct {
	armed atomic.Bool
	c     chan struct{}
}

func newKick() kick { return kick{c: make(chan struct{}, 1)} }

func (k *kick) send() {
	if k.armed.Load() || !k.armed.CompareAndSwap(false, true) {
		return
	}
	select {
	case k.c <- struct{}{}:
	default:
	}
}

// disarm is called by the loop when the timer fires, before the work it
// does: whatever a sender did before a send that found the kick armed is
// seen by that work, and a later send arms it again.
func (k *kick) disarm() { k.armed.Store(false) }

func (j *Journal) segOpenedAt() time.Time {
	j.syncMu.Lock()
	defer j.syncMu.Unlock()
	return j.segOpened
}

// batchSync fsyncs everything written so far (sync=batch).
func (j *Journal) batchSync() {
	j.mu.Lock()
	target := j.written
	already := j.synced >= target
	j.mu.Unlock()
	if already {
		return
	}
	err := j.syncFile()
	j.mu.Lock()
	if err != nil {
		j.lastErr = err
		j.log.Error("sync audit journal", "err", err)
		j.rotateDue.Store(true) // the page cache may have dropped data: new segment
		j.ringLimit = j.written // nothing more in the ring until a write succeeds
	} else if target > j.synced {
		j.synced = target
	}
	j.mu.Unlock()
}

// appendCheckpoint writes a signed checkpoint covering the current head.
func (j *Journal) appendCheckpoint(reason string, final bool) error {
	ts := j.cfg.Clock().UTC()
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	records, head := j.seq, j.head
	ivl := j.cfg.CheckpointInterval.Milliseconds()
	sig := ed25519.Sign(j.key, CheckpointMessage(j.cfg.Node, records, head, ts, final, ivl))
	r := &record.Record{
		TS: ts, Event: record.EventCheckpoint, Node: j.cfg.Node, Reason: reason,
		Checkpoint: &record.Checkpoint{Head: head, Records: records, KeyID: j.keyID,
			Signature: base64.StdEncoding.EncodeToString(sig), Final: final, IntervalMS: ivl},
	}
	var buf bytes.Buffer
	body, err := encodeBody(&buf, r)
	if err != nil {
		j.mu.Unlock()
		return err
	}
	c, err := j.appendLocked(body)
	if err != nil {
		j.mu.Unlock()
		return err
	}
	err = j.commitLocked(c.end)
	j.mu.Unlock()
	if err != nil {
		return fmt.Errorf("%w: %w", ErrJournal, err)
	}
	j.stats.checkpoints.Add(1)
	return nil
}

// Healthy returns nil when the last write (and fsync) succeeded, else the
// error that made the journal refuse records.
func (j *Journal) Healthy() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	if j.lastErr != nil {
		return fmt.Errorf("%w: %w", ErrJournal, j.lastErr)
	}
	return nil
}

// LastSeq returns the seq of the last record written.
func (j *Journal) LastSeq() uint64 {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.writtenSeq
}

// Dir returns the journal directory.
func (j *Journal) Dir() string { return j.cfg.Dir }

// Stats returns a snapshot of the journal's and its sinks' counters.
func (j *Journal) Stats() Stats {
	j.mu.Lock()
	s := Stats{LastSeq: j.writtenSeq, UnsyncedBytes: j.written - j.synced, PendingBytes: j.appended - j.written}
	j.mu.Unlock()
	s.Records = j.stats.records.Load()
	s.Bytes = j.stats.bytes.Load()
	s.Writes = j.stats.writes.Load()
	s.Syncs = j.stats.syncs.Load()
	s.WriteErrors = j.stats.writeErrors.Load()
	s.SyncErrors = j.stats.syncErrors.Load()
	s.Dropped = j.stats.dropped.Load()
	s.Checkpoints = j.stats.checkpoints.Load()
	s.Segments = j.stats.segments.Load()
	s.RecoveredTorn = j.stats.recovered.Load()
	for _, sh := range j.shippers {
		s.Sinks = append(s.Sinks, sh.Stats())
	}
	return s
}

// Sync forces an fsync of everything written so far.
func (j *Journal) Sync() error {
	j.flushPending()
	j.mu.Lock()
	for j.writing {
		j.cond.Wait()
	}
	target := j.written
	j.writing = true // keep writers (and rotation) out while syncing
	j.mu.Unlock()
	err := j.syncFile()
	j.mu.Lock()
	j.writing = false
	if err == nil && target > j.synced {
		j.synced = target
	}
	j.cond.Broadcast()
	j.mu.Unlock()
	return err
}

// Close writes a final signed checkpoint, stops the sinks (after they
// ship what they can within a short grace period), fsyncs and closes.
func (j *Journal) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return j.CloseContext(ctx)
}

// CloseContext is Close with a deadline for the sinks to drain.
func (j *Journal) CloseContext(ctx context.Context) error {
	cerr := j.appendCheckpoint("close", true)
	if errors.Is(cerr, ErrClosed) {
		return nil
	}
	for _, sh := range j.shippers {
		sh.stop(ctx)
	}
	j.mu.Lock()
	j.closed = true
	for j.writing {
		j.cond.Wait()
	}
	j.cond.Broadcast()
	j.mu.Unlock()
	close(j.done)
	j.wg.Wait()
	var errs []error
	if cerr != nil {
		errs = append(errs, cerr)
	}
	j.syncMu.Lock()
	if j.m != nil {
		if err := j.m.close(j.cfg.Sync != SyncNone); err != nil {
			errs = append(errs, err)
		}
		j.m = nil
	}
	j.syncMu.Unlock()
	if j.ring != nil {
		// every record is in the synced segment unless something failed:
		// then the ring stays for the next Open
		if err := j.ring.close(len(errs) == 0 && j.lastErr == nil); err != nil {
			errs = append(errs, fmt.Errorf("close journal ring: %w", err))
		}
	}
	j.lockF.Close()
	j.notify()
	return errors.Join(errs...)
}

// subscribe returns a channel that receives a value after new records are
// written (coalesced).
func (j *Journal) subscribe() chan struct{} {
	c := make(chan struct{}, 1)
	j.subsMu.Lock()
	j.subs = append(j.subs, c)
	j.subsMu.Unlock()
	return c
}

func (j *Journal) notify() {
	j.subsMu.Lock()
	for _, c := range j.subs {
		select {
		case c <- struct{}{}:
		default:
		}
	}
	j.subsMu.Unlock()
}

var _ io.Closer = (*Journal)(nil)
