package e2e

import (
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

const attrsQuery = "SELECT ATTR_NAME, ATTR_VALUE FROM performance_schema.session_connect_attrs WHERE PROCESSLIST_ID = CONNECTION_ID()"

// withoutPid checks the _pid attribute names the process that connected and
// returns the other attributes.
func withoutPid(t *testing.T, what string, attrs map[string]string, pid int) map[string]string {
	t.Helper()
	if got := attrs["_pid"]; got != strconv.Itoa(pid) {
		t.Fatalf("%s: _pid %q, want %d (attrs %v)", what, got, pid, attrs)
	}
	out := maps.Clone(attrs)
	delete(out, "_pid")
	return out
}

// TestConnectAttributes: the backend session sees the client's own
// connection attributes — what a direct connection of the same client shows
// in performance_schema.session_connect_attrs — plus sqlwarden_identity and
// sqlwarden_session, for the mariadb CLI, go-sql-driver and PyMySQL.
func TestConnectAttributes(t *testing.T) {
	d := harness.Start(t, harness.Options{Extra: permissive(t)})
	root := d.Maria.Open(t, "")
	var ps string
	if err := root.QueryRow("SELECT @@performance_schema").Scan(&ps); err != nil || ps != "1" {
		t.Fatalf("performance_schema is %q (%v) on the private MariaDB: scripts/mariadb.sh starts it on; restart an instance started before (scripts/mariadb.sh stop; scripts/mariadb.sh start)", ps, err)
	}
	host, port := d.HostPort()
	mhost, mport, _ := strings.Cut(d.Maria.Addr, ":")

	check := func(t *testing.T, proxied, direct map[string]string) {
		t.Helper()
		session := proxied["sqlwarden_session"]
		if proxied["sqlwarden_identity"] != harness.Identity || session == "" {
			t.Fatalf("sqlwarden's attributes missing: %v", proxied)
		}
		d.WaitFor(t, "session.start "+session, func(r *record.Record) bool {
			return r.Event == record.EventSessionStart && r.SessionID == session
		})
		rest := maps.Clone(proxied)
		delete(rest, "sqlwarden_identity")
		delete(rest, "sqlwarden_session")
		if !maps.Equal(rest, direct) {
			t.Fatalf("through sqlwarden %v\ndirect %v", rest, direct)
		}
		if len(direct) < 3 {
			t.Fatalf("the direct connection shows only %v", direct)
		}
	}

	t.Run("cli", func(t *testing.T) {
		run := func(h, p, user, pass string) (map[string]string, int) {
			args := []string{"-h", h, "-P", p, "-u", user, "--skip-ssl", "--batch", "--skip-column-names", "-e", attrsQuery}
			if pass != "" {
				args = append(args, "-p"+pass)
			}
			cmd := exec.Command("mariadb", args...)
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			if err != nil {
				t.Fatalf("mariadb: %v\n%s%s", err, out, stderr.String())
			}
			attrs := map[string]string{}
			for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
				k, v, _ := strings.Cut(line, "\t")
				attrs[k] = v
			}
			return attrs, cmd.Process.Pid
		}
		pa, ppid := run(host, port, harness.ClientUser, harness.ClientPassword)
		da, dpid := run(mhost, mport, "root", "")
		check(t, withoutPid(t, "through sqlwarden", pa, ppid), withoutPid(t, "direct", da, dpid))
		if pa["_client_name"] != "libmariadb" || pa["program_name"] != "mysql" {
			t.Errorf("CLI attributes %v", pa)
		}
	})

	t.Run("go", func(t *testing.T) {
		read := func(dsn string) map[string]string {
			db, err := sql.Open("mysql", dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			rows, err := db.Query(attrsQuery)
			if err != nil {
				t.Fatal(err)
			}
			defer rows.Close()
			attrs := map[string]string{}
			for rows.Next() {
				var k, v string
				if err := rows.Scan(&k, &v); err != nil {
					t.Fatal(err)
				}
				attrs[k] = v
			}
			return attrs
		}
		const extra = "connectionAttributes=program_name:sw-attrs,team:agents"
		pa := read(d.DSN("", extra))
		da := read(fmt.Sprintf("root:@tcp(%s)/?%s", d.Maria.Addr, extra))
		check(t, pa, da)
		if pa["_client_name"] != "Go-MySQL-Driver" || pa["program_name"] != "sw-attrs" || pa["team"] != "agents" {
			t.Errorf("go-sql-driver attributes %v", pa)
		}

		// Past what a server accepts (64 KiB of attributes), MariaDB refuses
		// the login; through sqlwarden the attributes are cut and it succeeds.
		huge := "connectionAttributes=program_name:sw-attrs,huge:" + strings.Repeat("x", 70000)
		direct, err := sql.Open("mysql", fmt.Sprintf("root:@tcp(%s)/?%s", d.Maria.Addr, huge))
		if err != nil {
			t.Fatal(err)
		}
		defer direct.Close()
		var me *gomysql.MySQLError
		if err := direct.Ping(); !errors.As(err, &me) || me.Number != 1043 {
			t.Fatalf("direct login with 70,000 bytes of attributes: %v, want MariaDB's 1043 bad handshake", err)
		}
		proxied, err := sql.Open("mysql", d.DSN("", huge))
		if err != nil {
			t.Fatal(err)
		}
		defer proxied.Close()
		var one int
		if err := proxied.QueryRow("SELECT 1").Scan(&one); err != nil {
			t.Fatalf("login through sqlwarden with 70,000 bytes of attributes: %v", err)
		}
	})

	t.Run("pymysql", func(t *testing.T) {
		run := func(h, p, user, pass string) (map[string]string, int) {
			out, err := exec.Command("/usr/bin/python3", filepath.Join(clientsDir(), "python", "attrs.py"), h, p, user, pass).CombinedOutput()
			if err != nil {
				t.Fatalf("attrs.py: %v\n%s", err, out)
			}
			var res struct {
				Pid   int               `json:"pid"`
				Attrs map[string]string `json:"attrs"`
			}
			if err := json.Unmarshal(out, &res); err != nil {
				t.Fatalf("attrs.py output %q: %v", out, err)
			}
			return res.Attrs, res.Pid
		}
		pa, ppid := run(host, port, harness.ClientUser, harness.ClientPassword)
		da, dpid := run(mhost, mport, "root", "")
		check(t, withoutPid(t, "through sqlwarden", pa, ppid), withoutPid(t, "direct", da, dpid))
		if pa["_client_name"] != "pymysql" || pa["program_name"] != "sw-attrs" {
			t.Errorf("PyMySQL attributes %v", pa)
		}
	})
}
