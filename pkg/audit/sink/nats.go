package sink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

type natsSink struct {
	cfg     audit.NATSConfig
	subject string
	nc      *nats.Conn
	js      jetstream.JetStream
	log     *slog.Logger
	ready   bool
}

// SubjectToken makes a node name usable as one NATS subject token.
func SubjectToken(node string) string {
	r := strings.NewReplacer(".", "_", " ", "_", "*", "_", ">", "_", "\t", "_")
	if node == "" {
		return "unknown"
	}
	return r.Replace(node)
}

func newNATSSink(cfg audit.NATSConfig, node string, log *slog.Logger) (*natsSink, error) {
	if cfg.URL == "" {
		return nil, errors.New("nats.url is empty")
	}
	if cfg.SubjectPrefix == "" {
		cfg.SubjectPrefix = "sqlwarden.audit"
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = 256
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	opts := []nats.Option{
		nats.Name("sqlwarden audit " + node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		// No reconnect buffer: a publish while disconnected fails at once
		// instead of being replayed after later ones (order).
		nats.ReconnectBufSize(-1),
		nats.Timeout(cfg.Timeout),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
	}
	if cfg.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(cfg.CredsFile))
	}
	tc, err := cfg.TLS.Build()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(cfg.URL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect nats: %w", err)
	}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(cfg.MaxInFlight), jetstream.WithPublishAsyncTimeout(cfg.Timeout))
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &natsSink{cfg: cfg, subject: cfg.SubjectPrefix + "." + SubjectToken(node), nc: nc, js: js, log: log}, nil
}

func (s *natsSink) ensureStream(ctx context.Context) error {
	if s.ready || !s.cfg.CreateStream || s.cfg.Stream == "" {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	_, err := s.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:       s.cfg.Stream,
		Subjects:   []string{s.cfg.SubjectPrefix + ".>"},
		Storage:    jetstream.FileStorage,
		Duplicates: 2 * time.Minute,
	})
	if err != nil {
		return fmt.Errorf("create stream %s: %w", s.cfg.Stream, err)
	}
	s.ready = true
	return nil
}

// ship publishes asynchronously (up to MaxInFlight awaiting acks) and counts
// the acknowledged prefix. It stops publishing as soon as the connection
// changes (a reconnect) so that nothing later can overtake a lost message.
func (s *natsSink) Ship(ctx context.Context, entries []audit.Entry) (int, error) {
	if !s.nc.IsConnected() {
		return 0, errors.New("nats not connected")
	}
	if err := s.ensureStream(ctx); err != nil {
		return 0, err
	}
	epoch := s.nc.Stats().Reconnects
	futs := make([]jetstream.PubAckFuture, 0, len(entries))
	var perr error
	for _, e := range entries {
		if s.nc.Stats().Reconnects != epoch || !s.nc.IsConnected() {
			perr = errors.New("nats connection changed during a batch")
			break
		}
		m := &nats.Msg{Subject: s.subject, Data: e.Line, Header: nats.Header{}}
		m.Header.Set(jetstream.MsgIDHeader, e.Hash)
		m.Header.Set("Sqlwarden-Seq", fmt.Sprint(e.Seq))
		f, err := s.js.PublishMsgAsync(m, jetstream.WithRetryAttempts(0))
		if err != nil {
			perr = fmt.Errorf("publish: %w", err)
			break
		}
		futs = append(futs, f)
	}
	timer := time.NewTimer(s.cfg.Timeout + time.Second)
	defer timer.Stop()
	acked := 0
	var aerr error
	for _, f := range futs {
		if aerr != nil {
			break
		}
		select {
		case <-f.Ok():
			acked++
		case err := <-f.Err():
			aerr = fmt.Errorf("publish ack: %w", err)
		case <-timer.C:
			aerr = errors.New("publish ack: timeout")
		case <-ctx.Done():
			aerr = ctx.Err()
		}
	}
	if aerr != nil {
		return acked, aerr
	}
	if perr != nil && acked < len(entries) {
		return acked, perr
	}
	return acked, nil
}

func (s *natsSink) Close() error {
	s.nc.Close()
	return nil
}
