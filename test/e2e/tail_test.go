package e2e

import (
	"bufio"
	"encoding/json"
	"io"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestAuditTailFollow: `sqlwarden audit tail --follow --json` prints records
// as the daemon writes them, including the statement of a query run once the
// tail says (on stderr) that it is following.
func TestAuditTailFollow(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	cmd := exec.Command(harness.Binary(t), "audit", "tail", "--follow", "--json", "-n", "0", "--dir", d.AuditDir)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	found := make(chan *record.Record, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<24)
		for sc.Scan() {
			var r record.Record
			if json.Unmarshal(sc.Bytes(), &r) == nil && r.Event == record.EventStatement && strings.Contains(r.SQL, "followed") {
				found <- &r
				return
			}
		}
	}()
	following := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "audit tail: following ") {
				close(following)
				break
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	select {
	case <-following:
	case <-time.After(10 * time.Second):
		t.Fatal("audit tail --follow did not start following within 10s")
	}
	db := d.Open(t, "test")
	var v string
	if err := db.QueryRow("SELECT 'followed'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-found:
		if r.Hash == "" || r.Seq == 0 {
			t.Fatalf("followed record lacks its chain fields: %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("audit tail --follow did not print the new statement within 10s")
	}
}
