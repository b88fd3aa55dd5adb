package approval

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATSStoreConfig locates a fleet's shared approval bucket.
type NATSStoreConfig struct {
	URL       string
	Bucket    string // default SQLWARDEN_APPROVALS
	CredsFile string
	TLS       *tls.Config
	// Node names the connection (shown by the NATS server).
	Node string
	// TTL is the bucket's maximum age of a value, set when this node
	// creates the bucket: a backstop for entries whose nodes went away.
	TTL time.Duration
	// Timeout bounds connecting and each operation; default 3s.
	Timeout time.Duration
	Log     *slog.Logger
}

// NATSStore is a Store in a NATS JetStream key-value bucket. It connects
// and binds the bucket in the background and reconnects by itself; while
// it cannot reach the bucket, Err says why and every operation fails with
// ErrStoreUnavailable.
type NATSStore struct {
	cfg NATSStoreConfig
	log *slog.Logger
	nc  *nats.Conn
	js  jetstream.JetStream

	mu      sync.Mutex
	kv      jetstream.KeyValue // nil until bound
	bindErr error
	changed chan struct{} // closed and replaced on each bind and reconnect

	kick   chan struct{} // wakes the binder
	closed chan struct{}
	once   sync.Once
}

// NewNATSStore connects (in the background when the server is not up yet).
func NewNATSStore(cfg NATSStoreConfig) (*NATSStore, error) {
	if cfg.URL == "" {
		return nil, errors.New("open approval store: nats url is empty")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "SQLWARDEN_APPROVALS"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 3 * time.Second
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &NATSStore{cfg: cfg, log: log, changed: make(chan struct{}), kick: make(chan struct{}, 1), closed: make(chan struct{})}
	opts := []nats.Option{
		nats.Name("sqlwarden approvals " + cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// Fail at once while disconnected rather than queue a write that
		// would land after the statement was already refused.
		nats.ReconnectBufSize(-1),
		nats.Timeout(cfg.Timeout),
		nats.RetryOnFailedConnect(true),
		nats.ConnectHandler(func(c *nats.Conn) { s.bump(c, "connected") }),
		nats.ReconnectHandler(func(c *nats.Conn) { s.bump(c, "reconnected") }),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn("approval store disconnected: approval-needing statements are refused until it is back", "err", err)
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	if cfg.TLS != nil {
		opts = append(opts, nats.Secure(cfg.TLS))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect approval store: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("open jetstream: %w", err)
	}
	s.mu.Lock()
	s.nc, s.js = nc, js
	s.mu.Unlock()
	go s.binder()
	s.kickBinder()
	return s, nil
}

// bump tells watchers to start over (the server may have restarted) and
// the binder to bind the bucket if it has not yet.
func (s *NATSStore) bump(c *nats.Conn, why string) {
	s.log.Info("approval store "+why, "url", c.ConnectedUrlRedacted())
	if why == "reconnected" {
		s.mu.Lock()
		close(s.changed)
		s.changed = make(chan struct{})
		s.mu.Unlock()
	}
	s.kickBinder()
}

func (s *NATSStore) kickBinder() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// binder binds (creating if need be) the bucket whenever it is not bound
// and the connection is up, retrying until it succeeds.
func (s *NATSStore) binder() {
	retry := time.NewTimer(time.Hour)
	defer retry.Stop()
	for {
		select {
		case <-s.closed:
			return
		case <-s.kick:
		case <-retry.C:
		}
		s.mu.Lock()
		bound := s.kv != nil
		s.mu.Unlock()
		if bound || !s.nc.IsConnected() {
			continue
		}
		kv, err := s.bind()
		s.mu.Lock()
		s.bindErr = err
		if err == nil {
			s.kv = kv
			close(s.changed)
			s.changed = make(chan struct{})
		}
		s.mu.Unlock()
		if err != nil {
			s.log.Warn("approval store: bind bucket", "bucket", s.cfg.Bucket, "err", err)
			retry.Reset(time.Second)
		} else {
			s.log.Info("approval store ready", "bucket", s.cfg.Bucket)
		}
	}
}

func (s *NATSStore) bind() (jetstream.KeyValue, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	kv, err := s.js.KeyValue(ctx, s.cfg.Bucket)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		kv, err = s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
			Bucket: s.cfg.Bucket, Description: "sqlwarden approval requests and decisions",
			History: 1, TTL: s.cfg.TTL, Storage: jetstream.FileStorage,
		})
		if errors.Is(err, jetstream.ErrBucketExists) {
			kv, err = s.js.KeyValue(ctx, s.cfg.Bucket)
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bind bucket %s: %w", s.cfg.Bucket, err)
	}
	return kv, nil
}

// Err implements Store.
func (s *NATSStore) Err() error {
	if !s.nc.IsConnected() {
		return fmt.Errorf("nats %s: %s", s.cfg.URL, s.nc.Status())
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.kv == nil {
		if s.bindErr != nil {
			return s.bindErr
		}
		return fmt.Errorf("bucket %s not bound yet", s.cfg.Bucket)
	}
	return nil
}

func (s *NATSStore) bucket() (jetstream.KeyValue, error) {
	if err := s.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.kv, nil
}

func isWrongLastSeq(err error) bool {
	var apiErr *jetstream.APIError
	return errors.Is(err, jetstream.ErrKeyRevisionMismatch) || (errors.As(err, &apiErr) &&
		(apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence || apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant))
}

func unavailableErr(err error) error {
	return fmt.Errorf("%w: %w", ErrStoreUnavailable, err)
}

// Create implements Store.
func (s *NATSStore) Create(ctx context.Context, key string, value []byte) (uint64, error) {
	kv, err := s.bucket()
	if err != nil {
		return 0, err
	}
	rev, err := kv.Create(ctx, key, value)
	switch {
	case errors.Is(err, jetstream.ErrKeyExists):
		return 0, ErrKeyExists
	case err != nil:
		return 0, unavailableErr(err)
	}
	return rev, nil
}

// Update implements Store.
func (s *NATSStore) Update(ctx context.Context, key string, value []byte, rev uint64) (uint64, error) {
	kv, err := s.bucket()
	if err != nil {
		return 0, err
	}
	n, err := kv.Update(ctx, key, value, rev)
	switch {
	case isWrongLastSeq(err):
		return 0, ErrRevision
	case err != nil:
		return 0, unavailableErr(err)
	}
	return n, nil
}

// Get implements Store.
func (s *NATSStore) Get(ctx context.Context, key string) (StoreEntry, error) {
	kv, err := s.bucket()
	if err != nil {
		return StoreEntry{}, err
	}
	e, err := kv.Get(ctx, key)
	switch {
	case errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted):
		return StoreEntry{}, ErrKeyNotFound
	case err != nil:
		return StoreEntry{}, unavailableErr(err)
	}
	return StoreEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision()}, nil
}

// Delete implements Store.
func (s *NATSStore) Delete(ctx context.Context, key string, rev uint64) error {
	kv, err := s.bucket()
	if err != nil {
		return err
	}
	err = kv.Delete(ctx, key, jetstream.LastRevision(rev))
	switch {
	case isWrongLastSeq(err):
		return ErrRevision
	case err != nil:
		return unavailableErr(err)
	}
	return nil
}

// waitRetry waits until the connection changes or a second passes before
// the watch is tried again; false means the watch is over (ctx done or the
// store closed).
func (s *NATSStore) waitRetry(ctx context.Context, changed <-chan struct{}) bool {
	select {
	case <-ctx.Done():
		return false
	case <-s.closed:
		return false
	case <-changed:
	case <-time.After(time.Second):
	}
	return true
}

// Watch implements Store. The watch starts over (current values, then
// changes) after every reconnect, so nothing decided while this node was
// cut off is missed.
func (s *NATSStore) Watch(ctx context.Context, fn func(StoreEntry)) {
	go func() {
		for {
			s.mu.Lock()
			kv, changed := s.kv, s.changed
			s.mu.Unlock()
			if kv == nil || !s.nc.IsConnected() {
				if !s.waitRetry(ctx, changed) {
					return
				}
				continue
			}
			wctx, cancel := context.WithCancel(ctx)
			w, err := kv.WatchAll(wctx)
			if err != nil {
				cancel()
				s.log.Warn("approval store: watch", "err", err)
				if !s.waitRetry(ctx, changed) {
					return
				}
				continue
			}
			s.drain(ctx, w, changed, fn)
			w.Stop() //nolint:errcheck // best effort
			cancel()
			if ctx.Err() != nil {
				return
			}
		}
	}()
}

func (s *NATSStore) drain(ctx context.Context, w jetstream.KeyWatcher, changed <-chan struct{}, fn func(StoreEntry)) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-s.closed:
			return
		case <-changed:
			return
		case e, ok := <-w.Updates():
			if !ok {
				return
			}
			if e == nil {
				continue // the end of the current values
			}
			op := e.Operation()
			fn(StoreEntry{Key: e.Key(), Value: e.Value(), Revision: e.Revision(),
				Deleted: op == jetstream.KeyValueDelete || op == jetstream.KeyValuePurge})
		}
	}
}

// Close implements Store.
func (s *NATSStore) Close() error {
	s.once.Do(func() {
		close(s.closed)
		s.nc.Close()
	})
	return nil
}
