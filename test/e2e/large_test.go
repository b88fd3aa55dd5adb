package e2e

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// TestLargeStatementsGiveMemoryBack: judging a statement costs memory in
// proportion to its text (the parser copies a literal several times over),
// so large statements are judged a budget at a time, and once they are done
// nothing keeps them — not the session, the classification cache, a pooled
// parser or the journal's buffers — and the memory goes back to the system.
// Before, four 64 MiB statements left the daemon at 2.7 GB.
func TestLargeStatementsGiveMemoryBack(t *testing.T) {
	d := harness.Start(t, harness.Options{})
	db, err := sql.Open("mysql", d.DSN("", "maxAllowedPacket=134217728"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		t.Fatal(err)
	}
	base := procRSS(t, d.PID())
	const size = 32 << 20
	q := "SELECT LENGTH('" + strings.Repeat("x", size) + "')"
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var n int
			if err := db.QueryRowContext(ctx, q).Scan(&n); err != nil || n != size {
				errs <- fmt.Errorf("%d, %v", n, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("a 32 MiB statement through the proxy: %v", err)
	}
	testutil.Eventually(t, 10*time.Second, func() error {
		// Without the free: 438 MB. The margin is the runtime's own slack under load.
		if rss := procRSS(t, d.PID()); rss > base+96<<10 {
			return fmt.Errorf("daemon RSS %d MB after four 32 MiB statements, %d MB before: the memory was not given back", rss>>10, base>>10)
		}
		return nil
	})
}

// TestMaxStatementSize: a query or PREPARE whose text is over
// max_statement_size is refused unparsed with ERR 1153, journaled, and the
// session goes on; a value that large goes as a parameter (long data),
// which is never parsed.
func TestMaxStatementSize(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: "max_statement_size: 1048576\n"})
	db, err := sql.Open("mysql", d.DSN("", "maxAllowedPacket=16777216&interpolateParams=false"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	big := strings.Repeat("x", 2<<20)
	var me *gomysql.MySQLError
	for _, q := range []string{"SELECT LENGTH('" + big + "')"} {
		if _, err := db.Exec(q); !errors.As(err, &me) || me.Number != 1153 || !strings.HasPrefix(me.Message, "sqlwarden: statement of ") || !strings.Contains(me.Message, "max_statement_size") {
			t.Fatalf("a 2 MiB query under max_statement_size 1 MiB: %v", err)
		}
	}
	if _, err := db.Prepare("SELECT LENGTH('" + big + "')"); !errors.As(err, &me) || me.Number != 1153 {
		t.Fatalf("a 2 MiB PREPARE: %v", err)
	}
	// The same session goes on; the value as a parameter passes.
	var n int
	if err := db.QueryRow("SELECT LENGTH(?)", big).Scan(&n); err != nil || n != len(big) {
		t.Fatalf("a 2 MiB parameter: %d %v", n, err)
	}
	recs := d.Settled(t)
	refused := 0
	for _, r := range recs {
		if r.Event == record.EventOutcome && r.Error != nil && r.Error.Code == 1153 {
			refused++
		}
	}
	if refused != 2 {
		t.Errorf("%d outcomes with ERR 1153, want 2", refused)
	}
}
