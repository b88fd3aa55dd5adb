package audit

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Sink types for SinkConfig.Type.
const (
	SinkNATS    = "nats"
	SinkWebhook = "webhook"
	SinkSyslog  = "syslog"
)

// SinkConfig is one entry of `audit.sinks`. Each sink ships the journal's
// lines verbatim, in order, from a durable cursor file
// (<cursor_dir>/<name>.cursor holding the last shipped seq): a sink outage
// loses nothing and never blocks Append. Delivery is at least once; the
// NATS sink de-duplicates by record hash (Nats-Msg-Id), webhook and syslog
// receivers can de-duplicate by seq/hash.
type SinkConfig struct {
	Name string `yaml:"name"` // default: the type
	Type string `yaml:"type"` // nats | webhook | syslog
	// BatchSize is the most records per shipment (default 256).
	BatchSize int `yaml:"batch_size"`
	// MinBackoff / MaxBackoff bound retry delays (defaults 100ms, 30s).
	MinBackoff time.Duration `yaml:"min_backoff"`
	MaxBackoff time.Duration `yaml:"max_backoff"`
	// CursorDir holds the cursor file (default <audit.dir>/cursors).
	CursorDir string `yaml:"cursor_dir"`
	// StartAtEnd: with no cursor yet, start from the journal's current end
	// instead of its beginning.
	StartAtEnd bool `yaml:"start_at_end"`

	NATS    NATSConfig    `yaml:"nats"`
	Webhook WebhookConfig `yaml:"webhook"`
	Syslog  SyslogConfig  `yaml:"syslog"`
}

// NATSConfig configures the NATS JetStream sink. Each record is published to
// <subject_prefix>.<node> with Nats-Msg-Id = the record hash, and counts as
// shipped only once JetStream acknowledged it.
type NATSConfig struct {
	URL           string `yaml:"url"`            // e.g. nats://127.0.0.1:4222
	SubjectPrefix string `yaml:"subject_prefix"` // default sqlwarden.audit
	// Stream, when set with CreateStream, is created (or updated) to
	// capture <subject_prefix>.> with a 2-minute duplicate window.
	Stream       string `yaml:"stream"`
	CreateStream bool   `yaml:"create_stream"`
	CredsFile    string `yaml:"creds_file"`
	// MaxInFlight is how many publishes await their ack at once (default 256).
	MaxInFlight int           `yaml:"max_in_flight"`
	Timeout     time.Duration `yaml:"timeout"` // connect and ack timeout (default 5s)
	TLS         TLSConfig     `yaml:"tls"`
}

// WebhookConfig configures the HTTP webhook sink: each batch is one POST of
// newline-delimited journal lines (Content-Type application/x-ndjson) with
// headers Sqlwarden-Node, Sqlwarden-First-Seq and Sqlwarden-Last-Seq. Any
// 2xx acknowledges the whole batch; anything else is retried with backoff.
type WebhookConfig struct {
	URL             string            `yaml:"url"`
	Headers         map[string]string `yaml:"headers"`
	BearerTokenFile string            `yaml:"bearer_token_file"`
	Timeout         time.Duration     `yaml:"timeout"` // default 10s
	TLS             TLSConfig         `yaml:"tls"`
}

// SyslogConfig configures the syslog sink: RFC 5424 messages over TCP (or
// TLS, RFC 5425) with octet-counting framing (RFC 6587). APP-NAME is
// app_name, MSGID the event, structured data [sqlwarden@32473 seq=.. hash=..]
// and MSG the journal line. Delivery is at-least-once (a TCP write that
// returned is treated as shipped).
type SyslogConfig struct {
	Address  string        `yaml:"address"`  // host:port
	Facility int           `yaml:"facility"` // default 16 (local0)
	AppName  string        `yaml:"app_name"` // default sqlwarden
	Timeout  time.Duration `yaml:"timeout"`  // dial and write timeout (default 5s)
	TLS      TLSConfig     `yaml:"tls"`
}

// TLSConfig is the client TLS used by network sinks.
type TLSConfig struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Build returns the *tls.Config, or nil when TLS is disabled.
func (c TLSConfig) Build() (*tls.Config, error) {
	if !c.Enabled {
		return nil, nil
	}
	tc := &tls.Config{ServerName: c.ServerName, InsecureSkipVerify: c.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("read CA file: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("read CA file %s: no certificates", c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

// SinkStats reports a sink's progress (for metrics and `status`).
type SinkStats struct {
	Name        string    `json:"name"`
	Type        string    `json:"type"`
	ShippedSeq  uint64    `json:"shipped_seq"` // cursor: last seq durably accepted by the sink
	HeadSeq     uint64    `json:"head_seq"`    // last seq written to the journal
	Lag         uint64    `json:"lag"`         // HeadSeq - ShippedSeq
	Shipped     uint64    `json:"shipped"`     // records shipped by this process
	Batches     uint64    `json:"batches"`
	Errors      uint64    `json:"errors"`
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastShipAt  time.Time `json:"last_ship_at,omitzero"`
}

// Sink is what a destination implements (package sink has the NATS,
// webhook and syslog ones). Ship delivers entries in order and returns how
// many of them (a prefix) are durably accepted; Close releases it once its
// shipper stops.
type Sink interface {
	Ship(ctx context.Context, entries []Entry) (int, error)
	Close() error
}

// SinkOpener makes the Sink for one `audit.sinks` entry. The journal takes
// it from Config.OpenSink so that it does not import the destinations'
// client libraries (NATS) itself.
type SinkOpener func(sc SinkConfig, node string, log *slog.Logger) (Sink, error)

// Shipper ships the journal to one sink from a durable cursor.
type Shipper struct {
	j      *Journal
	cfg    SinkConfig
	sink   Sink
	log    *slog.Logger
	cursor string
	wake   chan struct{}

	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}
	drain  chan struct{}

	mu    sync.Mutex
	stats SinkStats
}

func newShipper(j *Journal, sc SinkConfig) (*Shipper, error) {
	if sc.Name == "" {
		sc.Name = sc.Type
	}
	if sc.BatchSize <= 0 {
		sc.BatchSize = 256
	}
	if sc.MinBackoff <= 0 {
		sc.MinBackoff = 100 * time.Millisecond
	}
	if sc.MaxBackoff <= 0 {
		sc.MaxBackoff = 30 * time.Second
	}
	if sc.CursorDir == "" {
		sc.CursorDir = filepath.Join(j.cfg.Dir, "cursors")
	}
	if strings.ContainsAny(sc.Name, "/\\") || sc.Name == "." || sc.Name == ".." {
		return nil, fmt.Errorf("start sink: bad name %q", sc.Name)
	}
	log := j.log.With("sink", sc.Name)
	if j.cfg.OpenSink == nil {
		return nil, fmt.Errorf("start sink %s: no sink opener (audit.Config.OpenSink)", sc.Name)
	}
	s, err := j.cfg.OpenSink(sc, j.cfg.Node, log)
	if err != nil {
		return nil, fmt.Errorf("start sink %s: %w", sc.Name, err)
	}
	if err := os.MkdirAll(sc.CursorDir, 0o700); err != nil {
		s.Close()
		return nil, fmt.Errorf("create cursor dir: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	sh := &Shipper{
		j: j, cfg: sc, sink: s, log: log,
		cursor: filepath.Join(sc.CursorDir, sc.Name+".cursor"),
		wake:   j.subscribe(),
		ctx:    ctx, cancel: cancel,
		done: make(chan struct{}), drain: make(chan struct{}),
		stats: SinkStats{Name: sc.Name, Type: sc.Type},
	}
	return sh, nil
}

// ReadCursor returns the last shipped seq stored in a cursor file (0 if none).
func ReadCursor(path string) (uint64, bool, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read cursor: %w", err)
	}
	seq, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0, false, fmt.Errorf("parse cursor %s: %w", path, err)
	}
	return seq, true, nil
}

func (s *Shipper) start() { go s.run() }

func (s *Shipper) run() {
	defer close(s.done)
	defer s.sink.Close()
	after, ok, err := ReadCursor(s.cursor)
	if err != nil {
		s.log.Error("read sink cursor; starting from the beginning", "err", err)
	}
	if !ok && s.cfg.StartAtEnd {
		after = s.j.LastSeq()
	}
	s.mu.Lock()
	s.stats.ShippedSeq = after
	s.mu.Unlock()
	fl := NewFollower(s.j.cfg.Dir, after)
	defer fl.Close()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	backoff := s.cfg.MinBackoff
	draining := false
	drainC := s.drain
	var pending []Entry
	for {
		if len(pending) == 0 {
			pending, err = fl.Next(s.cfg.BatchSize, 4<<20)
			if err != nil {
				s.noteErr(err)
			}
		}
		if len(pending) == 0 {
			if draining {
				return
			}
			select {
			case <-s.ctx.Done():
				return
			case <-drainC:
				draining = true
				drainC = nil
			case <-s.wake:
			case <-tick.C:
			}
			continue
		}
		n, err := s.sink.Ship(s.ctx, pending)
		if n > 0 {
			last := pending[n-1].Seq
			if cerr := writeFileAtomic(s.cursor, []byte(strconv.FormatUint(last, 10)+"\n"), 0o600); cerr != nil {
				s.noteErr(fmt.Errorf("write cursor: %w", cerr))
			}
			s.mu.Lock()
			s.stats.ShippedSeq = last
			s.stats.Shipped += uint64(n)
			s.stats.Batches++
			s.stats.LastShipAt = time.Now()
			s.mu.Unlock()
			pending = pending[n:]
			backoff = s.cfg.MinBackoff
		}
		if err != nil {
			if s.ctx.Err() != nil {
				return
			}
			s.noteErr(err)
			select {
			case <-s.ctx.Done():
				return
			case <-time.After(backoff):
			}
			backoff = min(backoff*2, s.cfg.MaxBackoff)
		}
	}
}

func (s *Shipper) noteErr(err error) {
	s.mu.Lock()
	first := s.stats.LastError == ""
	s.stats.Errors++
	s.stats.LastError = err.Error()
	s.stats.LastErrorAt = time.Now()
	n := s.stats.Errors
	s.mu.Unlock()
	if first || n%100 == 0 {
		s.log.Warn("ship audit records", "err", err, "errors", n)
	}
}

// stop lets the shipper catch up until ctx is done, then stops it.
func (s *Shipper) stop(ctx context.Context) {
	select {
	case s.drain <- struct{}{}:
	case <-s.done:
	case <-ctx.Done():
	}
	select {
	case <-s.done:
	case <-ctx.Done():
		s.cancel()
		<-s.done
	}
	s.cancel()
}

// Stats returns the sink's counters.
func (s *Shipper) Stats() SinkStats {
	s.mu.Lock()
	st := s.stats
	s.mu.Unlock()
	st.HeadSeq = s.j.LastSeq()
	if st.HeadSeq > st.ShippedSeq {
		st.Lag = st.HeadSeq - st.ShippedSeq
	}
	return st
}
