package sink

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// DefaultStream is the stream name the documentation and deploy/ use for
// the nats sink.
const DefaultStream = "SQLWARDEN_AUDIT"

// NATSSource is the JetStream stream a fleet's nats sinks write: every
// node's records, each on <subject_prefix>.<node>.
type NATSSource struct {
	URL           string
	Stream        string // default SQLWARDEN_AUDIT
	SubjectPrefix string // default sqlwarden.audit
	CredsFile     string
	TLS           audit.TLSConfig
	Timeout       time.Duration // connect and each request; default 5s
}

// NATSMsg is one record as the stream holds it.
type NATSMsg struct {
	Line      []byte // the journal line, byte for byte
	StreamSeq uint64
	Subject   string
}

func (s *NATSSource) defaults() {
	if s.Stream == "" {
		s.Stream = DefaultStream
	}
	if s.SubjectPrefix == "" {
		s.SubjectPrefix = "sqlwarden.audit"
	}
	if s.Timeout <= 0 {
		s.Timeout = 5 * time.Second
	}
}

// Subject is the subject of node's records ("" for every node's).
func (s NATSSource) Subject(node string) string {
	s.defaults()
	if node == "" {
		return s.SubjectPrefix + ".>"
	}
	return s.SubjectPrefix + "." + SubjectToken(node)
}

func (s NATSSource) connect() (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{nats.Name("sqlwarden audit reader"), nats.Timeout(s.Timeout)}
	if s.CredsFile != "" {
		opts = append(opts, nats.UserCredentials(s.CredsFile))
	}
	tc, err := s.TLS.Build()
	if err != nil {
		return nil, nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	nc, err := nats.Connect(s.URL, opts...)
	if err != nil {
		return nil, nil, fmt.Errorf("connect nats %s: %w", s.URL, err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("open jetstream: %w", err)
	}
	return nc, js, nil
}

// ReadNATS calls fn with every message of the stream on node's subject
// (every node's when node is empty) whose stream sequence is past after,
// oldest first. Without follow it stops
// after the last message there was when it started; with follow it goes on
// until ctx ends or fn returns an error (ErrStop ends it cleanly).
func ReadNATS(ctx context.Context, src NATSSource, node string, after uint64, follow bool, fn func(NATSMsg) error) error {
	src.defaults()
	nc, js, err := src.connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	rctx, cancel := context.WithTimeout(ctx, src.Timeout)
	st, err := js.Stream(rctx, src.Stream)
	cancel()
	if err != nil {
		return fmt.Errorf("open stream %s: %w", src.Stream, err)
	}
	rctx, cancel = context.WithTimeout(ctx, src.Timeout)
	cc := jetstream.OrderedConsumerConfig{FilterSubjects: []string{src.Subject(node)}}
	if after > 0 {
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, after+1
	}
	cons, err := st.OrderedConsumer(rctx, cc)
	cancel()
	if err != nil {
		return fmt.Errorf("read stream %s: %w", src.Stream, err)
	}
	if !follow {
		if info := cons.CachedInfo(); info != nil && info.NumPending == 0 {
			return nil
		}
	}
	it, err := cons.Messages()
	if err != nil {
		return fmt.Errorf("read stream %s: %w", src.Stream, err)
	}
	defer it.Stop()
	stopped := make(chan struct{})
	defer close(stopped)
	go func() {
		select {
		case <-ctx.Done():
			it.Stop()
		case <-stopped:
		}
	}()
	for {
		msg, err := it.Next()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("read stream %s: %w", src.Stream, err)
		}
		md, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("read stream %s: %w", src.Stream, err)
		}
		if err := fn(NATSMsg{Line: msg.Data(), StreamSeq: md.Sequence.Stream, Subject: msg.Subject()}); err != nil {
			if errors.Is(err, audit.ErrStop) {
				return nil
			}
			return err
		}
		if !follow && md.NumPending == 0 {
			return nil
		}
	}
}

// ReadAllNATS is ReadAll over the stream: every decodable record, oldest
// first.
func ReadAllNATS(ctx context.Context, src NATSSource, node string, fn func(*record.Record) error) error {
	return ReadNATS(ctx, src, node, 0, false, func(m NATSMsg) error {
		r, err := audit.DecodeLine(m.Line)
		if err != nil {
			return nil // not a record; verify reports such messages
		}
		return fn(r)
	})
}

// SearchNATS is Search over the stream (every node's records unless
// f.Node is set).
func SearchNATS(ctx context.Context, src NATSSource, f audit.Filter, fn func(*record.Record) error) error {
	return audit.SearchFrom(func(each func(*record.Record) error) error {
		return ReadAllNATS(ctx, src, f.Node, each)
	}, f, fn)
}

// StreamCopy writes node's records from the stream into dir as one journal
// segment, so the chain can be verified from the stream alone. A message
// repeated back to back (a publish retried past the duplicate window) is
// kept once.
func StreamCopy(ctx context.Context, src NATSSource, node, dir string) (int, error) {
	var lines [][]byte
	var firstSeq uint64
	lastHash := ""
	err := ReadNATS(ctx, src, node, 0, false, func(m NATSMsg) error {
		_, h, err := audit.SplitLine(m.Line)
		if err == nil && h == lastHash {
			return nil
		}
		lastHash = h
		if len(lines) == 0 {
			if r, err := audit.DecodeLine(m.Line); err == nil {
				firstSeq = r.Seq
			}
		}
		lines = append(lines, append([]byte(nil), m.Line...))
		return nil
	})
	if err != nil {
		return 0, err
	}
	if len(lines) == 0 {
		return 0, nil
	}
	if firstSeq == 0 {
		firstSeq = 1
	}
	f, err := os.Create(filepath.Join(dir, audit.SegmentName(firstSeq)))
	if err != nil {
		return 0, fmt.Errorf("copy stream: %w", err)
	}
	for _, l := range lines {
		if _, err := f.Write(append(l, '\n')); err != nil {
			f.Close()
			return 0, fmt.Errorf("copy stream: %w", err)
		}
	}
	return len(lines), f.Close()
}

// StreamHead is the last record the stream holds for a node.
type StreamHead struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// CompareWithStream checks that the local journal in dir holds everything
// the stream holds for its node: the record at the stream's head sequence
// exists locally with the same hash. A local journal cut by even one
// record, or one that diverges from what was shipped, is a problem.
func CompareWithStream(dir string, head StreamHead, rep *audit.Report, streamName string) error {
	if head.Seq == 0 {
		rep.Warnings = append(rep.Warnings, audit.Problem{Kind: audit.ProblemTruncated, Segment: streamName,
			Reason: "the stream holds no record of this node: nothing to compare"})
		return nil
	}
	var local string
	err := audit.ReadAll(dir, func(r *record.Record) error {
		if r.Seq == head.Seq {
			local = r.Hash
			return audit.ErrStop
		}
		return nil
	})
	if err != nil && !errors.Is(err, audit.ErrStop) {
		return err
	}
	switch {
	case rep.LastSeq < head.Seq:
		rep.Problems = append(rep.Problems, audit.Problem{Kind: audit.ProblemTruncated, Segment: streamName, Seq: head.Seq,
			Reason: fmt.Sprintf("the local journal ends at seq %d but the stream holds records up to seq %d (hash %s): the local tail was cut", rep.LastSeq, head.Seq, short(head.Hash))})
	case local == "":
		rep.Problems = append(rep.Problems, audit.Problem{Kind: audit.ProblemDeleted, Segment: streamName, Seq: head.Seq,
			Reason: fmt.Sprintf("the stream's head seq %d is missing from the local journal", head.Seq)})
	case local != head.Hash:
		rep.Problems = append(rep.Problems, audit.Problem{Kind: audit.ProblemChain, Segment: streamName, Seq: head.Seq,
			Reason: fmt.Sprintf("local record seq %d has hash %s, the stream's has %s: the journals diverge", head.Seq, short(local), short(head.Hash))})
	}
	rep.OK = len(rep.Problems) == 0
	return nil
}

// HeadOf returns the last sequence and hash of a verified report (the
// stream copy's).
func HeadOf(rep *audit.Report) StreamHead { return StreamHead{Seq: rep.LastSeq, Hash: rep.Head} }

// short abbreviates a hash in a problem's reason, as verify does.
func short(h string) string {
	if len(h) > 12 {
		return h[:12]
	}
	return h
}
