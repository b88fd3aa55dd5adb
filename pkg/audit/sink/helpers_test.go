package sink

import (
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

func testLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// openTest opens a journal in dir that ships through this package's sinks.
func openTest(t testing.TB, dir string, mod func(*audit.Config)) *audit.Journal {
	t.Helper()
	cfg := audit.Config{Dir: dir, Node: "node-a", Log: testLog(), CheckpointInterval: time.Hour, OpenSink: Open}
	if mod != nil {
		mod(&cfg)
	}
	j, err := audit.Open(cfg)
	if err != nil {
		t.Fatalf("open journal: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func stmt(i int) *record.Record {
	return &record.Record{Event: record.EventStatement, SessionID: fmt.Sprintf("s%d", i%4), StatementID: uint64(i),
		Command: "COM_QUERY", SQL: fmt.Sprintf("SELECT %d /* \"seq\":0 <x> */", i), DB: "shop"}
}
