package daemon

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/config"
)

// testConfig is a daemon on loopback ports with its journal in dir; the
// backend is never dialled (no client connects).
func testConfig(t *testing.T, dir, listen, admin string) *config.Config {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`
listen: %s
admin_listen: %s
node: unit
drain_timeout: 2s
audit:
  dir: %s
backends:
  - name: db
    address: 127.0.0.1:1
    user: warden
    password: pw
`, listen, admin, filepath.Join(dir, "audit"))))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

var quiet = Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Version: "test"}

// A New that fails after the journal opened closes it again: the journal's
// directory lock is free for the next start.
func TestNewClosesWhatItBuiltOnError(t *testing.T) {
	dir := t.TempDir()
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	_, err = New(context.Background(), testConfig(t, dir, busy.Addr().String(), freeAddr(t)), quiet)
	if err == nil || !strings.Contains(err.Error(), "listen "+busy.Addr().String()) {
		t.Fatalf("New on a taken listen address: %v", err)
	}
	d, err := New(context.Background(), testConfig(t, dir, freeAddr(t), freeAddr(t)), quiet)
	if err != nil {
		t.Fatalf("New after a failed New on the same journal: %v", err)
	}
	d.Close()
}

// Run serves /readyz once the listeners are up and /metrics with the build
// version, returns when its context ends, and Close releases the journal.
func TestRunServesUntilCancelled(t *testing.T) {
	dir := t.TempDir()
	admin := freeAddr(t)
	d, err := New(context.Background(), testConfig(t, dir, freeAddr(t), admin), quiet)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	get := func(path string) (int, string) {
		res, err := http.Get("http://" + admin + path)
		if err != nil {
			return 0, err.Error()
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res.StatusCode, string(b)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		if code, body := get("/readyz"); code != http.StatusOK || strings.TrimSpace(body) != "ready" {
			return fmt.Errorf("/readyz never ready: %d %s", code, body)
		}
		return nil
	})
	if code, body := get("/metrics"); code != http.StatusOK || !strings.Contains(body, `version="test"`) {
		t.Errorf("/metrics: %d, no build version in:\n%.2000s", code, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	d.Close()
	d2, err := New(context.Background(), testConfig(t, dir, freeAddr(t), freeAddr(t)), quiet)
	if err != nil {
		t.Fatalf("New after Close on the same journal: %v", err)
	}
	d2.Close()
}
