package testutil

import (
	"database/sql"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	_ "github.com/go-sql-driver/mysql" // the real client library, for setup and direct reads
)

// MariaDB describes the project's private MariaDB instance (scripts/mariadb.sh).
type MariaDB struct {
	Addr   string // 127.0.0.1:PORT
	Socket string
	Root   string // root user, empty password
}

var (
	mariaOnce sync.Once
	mariaErr  error
	maria     MariaDB
)

// RepoRoot returns the repository's top directory.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// StartMariaDB starts (idempotently) the private MariaDB used by tests and
// returns how to reach it. Tests that need it fail when it cannot be started:
// a database test that silently skips is a test that proves nothing.
func StartMariaDB(t testing.TB) MariaDB {
	t.Helper()
	mariaOnce.Do(func() {
		script := filepath.Join(RepoRoot(), "scripts", "mariadb.sh")
		out, err := exec.Command("bash", script, "start").CombinedOutput()
		if err != nil {
			mariaErr = fmt.Errorf("scripts/mariadb.sh start: %v\n%s", err, out)
			return
		}
		port := os.Getenv("SQLWARDEN_MARIADB_PORT")
		if port == "" {
			port = "13306"
		}
		dir := os.Getenv("SQLWARDEN_MARIADB_DIR")
		if dir == "" {
			dir = "/tmp/sqlwarden-mariadb"
		}
		maria = MariaDB{Addr: "127.0.0.1:" + port, Socket: filepath.Join(dir, "mysqld.sock"), Root: "root"}
	})
	if mariaErr != nil {
		t.Fatal(mariaErr)
	}
	return maria
}

// DSN returns a go-sql-driver DSN for the given user/password and database,
// connecting directly to the private MariaDB.
func (m MariaDB) DSN(user, pass, db string) string {
	return fmt.Sprintf("%s:%s@tcp(%s)/%s?multiStatements=true&interpolateParams=false", user, pass, m.Addr, db)
}

// Open opens a direct root connection to the private MariaDB.
func (m MariaDB) Open(t testing.TB, db string) *sql.DB {
	t.Helper()
	conn, err := sql.Open("mysql", m.DSN(m.Root, "", db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Ping(); err != nil {
		t.Fatalf("ping private mariadb at %s: %v", m.Addr, err)
	}
	return conn
}

var (
	secondOnce sync.Once
	secondErr  error
	second     MariaDB
)

// StartSecondMariaDB starts (idempotently) another private MariaDB, on its
// own port and data directory, for tests that need a second server (replay
// targets).
func StartSecondMariaDB(t testing.TB) MariaDB {
	t.Helper()
	secondOnce.Do(func() {
		dir := "/tmp/sqlwarden-mariadb-2"
		cmd := exec.Command("bash", filepath.Join(RepoRoot(), "scripts", "mariadb.sh"), "start")
		cmd.Env = append(os.Environ(), "SQLWARDEN_MARIADB_PORT=13307", "SQLWARDEN_MARIADB_DIR="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			secondErr = fmt.Errorf("second mariadb: %v\n%s", err, out)
			return
		}
		second = MariaDB{Addr: "127.0.0.1:13307", Socket: filepath.Join(dir, "mysqld.sock"), Root: "root"}
	})
	if secondErr != nil {
		t.Fatal(secondErr)
	}
	return second
}
