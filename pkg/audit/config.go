package audit

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Sync modes for Config.Sync.
const (
	SyncAlways = "always" // fdatasync (group commit) before Append returns
	SyncBatch  = "batch"  // fdatasync in the background within BatchWindow (+ one fdatasync)
	SyncNone   = "none"   // leave it to the OS page cache
)

// Defaults applied by Open when a Config field is zero.
const (
	DefaultBatchWindow        = 10 * time.Millisecond
	DefaultSegmentMaxBytes    = 64 << 20
	DefaultSegmentMaxAge      = time.Hour
	DefaultCheckpointInterval = 10 * time.Second
	DefaultKeyFileName        = "checkpoint.key"
	// DefaultDir is where the daemon keeps the journal, and where the CLI
	// reads it, when audit.dir is not set.
	DefaultDir = "/var/lib/sqlwarden/audit"
)

// Config configures a Journal; it is the `audit:` section of the daemon's
// YAML config (the lead's config type can embed it as is).
type Config struct {
	// Dir holds the *.jsonl segments, the lock file, sink cursors and (by
	// default) the checkpoint key.
	Dir string `yaml:"dir"`
	// Sync is always | batch | none (default batch). In every mode Append
	// returns only after the record is where a process crash does not lose
	// it: in the page cache (written into the live segment) or, with batch
	// and RingDir, in the ring, which the next Open replays.
	Sync string `yaml:"sync"`
	// BatchWindow bounds how long a written record may stay un-fsynced in
	// batch mode (the bound is BatchWindow plus one fsync). Default 10ms.
	BatchWindow time.Duration `yaml:"batch_window"`
	// FailOpen makes Append return nil when the journal cannot be written
	// (the record is dropped and counted). Default false: fail closed.
	FailOpen bool `yaml:"fail_open"`
	// SegmentMaxBytes and SegmentMaxAge rotate segments (defaults 64 MiB, 1h).
	SegmentMaxBytes int64         `yaml:"segment_max_bytes"`
	SegmentMaxAge   time.Duration `yaml:"segment_max_age"`
	// CheckpointInterval is how often a signed checkpoint is written, even
	// when idle (default 10s). One is also written on Open and on Close.
	CheckpointInterval time.Duration `yaml:"checkpoint_interval"`
	// KeyFile is the ed25519 private key (PKCS#8 PEM) that signs
	// checkpoints; generated on first start with KeyFile+".pub" exported.
	// Default Dir/checkpoint.key.
	KeyFile string `yaml:"key_file"`
	// Node names this node in every record and checkpoint (default hostname).
	Node string `yaml:"node"`
	// RingDir is where sync=batch keeps its write-ahead ring (ring.go): a
	// directory on a memory file system that outlives the process (tmpfs:
	// /dev/shm, or a memory-backed volume of the pod). Records are copied
	// into the ring before Append returns and written to the segment once
	// per batch window. "auto" is /dev/shm/sqlwarden when /dev/shm is a
	// tmpfs; "off" or empty writes each record with a pwrite before Append
	// returns. The directory must be the daemon's user's alone (0700): a
	// ring another user could read or write is not used.
	RingDir string `yaml:"ring_dir"`
	// RingBytes is the ring's size (default 4 MiB); records not yet written
	// beyond it wait for a write, as without a ring.
	RingBytes int64 `yaml:"ring_bytes"`
	// Sinks ship the journal off the node from durable cursors.
	Sinks []SinkConfig `yaml:"sinks"`
	// Results configures optional retention of (masked) result rows.
	Results record.Results `yaml:"results"`

	// OpenSink makes the sinks listed in Sinks (sink.Open in the daemon);
	// required when Sinks is not empty.
	OpenSink SinkOpener `yaml:"-"`
	// Log receives the journal's own log lines (default slog.Default()).
	Log *slog.Logger `yaml:"-"`
	// SyncObserver, when set, is called with the duration of every fsync
	// (metrics hook).
	SyncObserver func(time.Duration) `yaml:"-"`
	// WriteHook, when set, is called before every batch is written with
	// the bytes about to be written; a non-nil error is treated as a failed write
	// (test hook: makes the journal refuse statements).
	WriteHook func(p []byte) error `yaml:"-"`
	// Clock returns the current time (default time.Now); for tests.
	Clock func() time.Time `yaml:"-"`
}

func (c *Config) withDefaults() (Config, error) {
	cfg := *c
	if cfg.Dir == "" {
		return cfg, fmt.Errorf("open journal: audit dir is empty")
	}
	switch cfg.Sync {
	case "":
		cfg.Sync = SyncBatch
	case SyncAlways, SyncBatch, SyncNone:
	default:
		return cfg, fmt.Errorf("open journal: unknown sync mode %q (always|batch|none)", cfg.Sync)
	}
	if cfg.BatchWindow <= 0 {
		cfg.BatchWindow = DefaultBatchWindow
	}
	if cfg.RingBytes <= 0 {
		cfg.RingBytes = DefaultRingBytes
	}
	if cfg.RingBytes < 64<<10 {
		return cfg, fmt.Errorf("open journal: ring_bytes %d is below 64 KiB", cfg.RingBytes)
	}
	if cfg.SegmentMaxBytes <= 0 {
		cfg.SegmentMaxBytes = DefaultSegmentMaxBytes
	}
	if cfg.SegmentMaxAge <= 0 {
		cfg.SegmentMaxAge = DefaultSegmentMaxAge
	}
	if cfg.CheckpointInterval <= 0 {
		cfg.CheckpointInterval = DefaultCheckpointInterval
	}
	if cfg.KeyFile == "" {
		cfg.KeyFile = filepath.Join(cfg.Dir, DefaultKeyFileName)
	}
	if cfg.Node == "" {
		cfg.Node = hostname()
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = time.Now
	}
	return cfg, nil
}
