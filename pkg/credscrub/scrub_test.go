package credscrub

import (
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

func TestScrub(t *testing.T) {
	tests := []struct{ in, want string }{
		{"GRANT ALL PRIVILEGES ON *.* TO `warden`@`%` IDENTIFIED BY PASSWORD '*28204CFEA3FE894BD7A1D7871AA53EED8D7FB076'",
			"GRANT ALL PRIVILEGES ON *.* TO `warden`@`%` IDENTIFIED BY PASSWORD '<secret>'"},
		{"GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED VIA ed25519 USING 'ZIgUREUg5PVgQ6LskhXmO+eZLS0nC8be6HPjYWR4YJY'",
			"GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED VIA ed25519 USING '<secret>'"},
		{"CREATE USER `u`@`%` IDENTIFIED VIA mysql_native_password USING '*AB' OR ed25519 USING 'cd\\'ef' OR unix_socket",
			"CREATE USER `u`@`%` IDENTIFIED VIA mysql_native_password USING '<secret>' OR ed25519 USING '<secret>' OR unix_socket"},
		{"CREATE USER 'u'@'%' IDENTIFIED WITH 'caching_sha2_password' AS '$A$005$x''y' REQUIRE NONE PASSWORD EXPIRE DEFAULT",
			"CREATE USER 'u'@'%' IDENTIFIED WITH 'caching_sha2_password' AS '<secret>' REQUIRE NONE PASSWORD EXPIRE DEFAULT"},
		{"CREATE USER 'u'@'%' IDENTIFIED WITH 'caching_sha2_password' AS 0x2441243030350A REQUIRE NONE",
			"CREATE USER 'u'@'%' IDENTIFIED WITH 'caching_sha2_password' AS '<secret>' REQUIRE NONE"},
		{"create user `u`@`h` identified by password\n'*AA'", "create user `u`@`h` identified by password\n'<secret>'"},
		{"GRANT USAGE ON *.* TO `as`@`password` IDENTIFIED BY PASSWORD X'2A41'", "GRANT USAGE ON *.* TO `as`@`password` IDENTIFIED BY PASSWORD '<secret>'"},
		// Identifiers named like keywords do not trigger; nothing to scrub.
		{"GRANT SELECT ON `db`.* TO `password`@`%`", ""},
		{"GRANT `using` TO `as`@`%`", ""},
		{"GRANT SELECT ON \"as\".* TO 'r'", ""},
		{"", ""},
		// Adjacent literals are one value in SQL: all of it goes.
		{"IDENTIFIED BY PASSWORD '*AB' 'CD' REQUIRE NONE", "IDENTIFIED BY PASSWORD '<secret>' REQUIRE NONE"},
		{"IDENTIFIED BY PASSWORD '", "IDENTIFIED BY PASSWORD '<secret>'"},
	}
	for _, tt := range tests {
		out, changed := Scrub([]byte(tt.in), nil)
		want := tt.want
		if want == "" {
			if changed {
				t.Errorf("Scrub(%q) changed it to %q", tt.in, out)
			}
			continue
		}
		if !changed || string(out) != want {
			t.Errorf("Scrub(%q) = %q, %v; want %q", tt.in, out, changed, want)
		}
	}
}

func TestIsCredentialColumn(t *testing.T) {
	for name, want := range map[string]bool{
		"Grants for warden@%": true, "CREATE USER for u@localhost": true, "grants for x": true,
		"Grants": false, "Create Table": false, "Grants fo": false,
	} {
		if IsCredentialColumn([]byte(name)) != want {
			t.Errorf("IsCredentialColumn(%q) != %v", name, want)
		}
	}
}

// TestEditorRows: text and binary rows through rows.Rewriter.
func TestEditorRows(t *testing.T) {
	grant := "GRANT USAGE ON *.* TO `u`@`%` IDENTIFIED BY PASSWORD '*ABCDEF'"
	e := &Editor{}
	rw := rows.NewRewriter([]byte{0xfd}, []bool{true}, e)
	text := wire.AppendLenEncString(nil, []byte(grant))
	out, changed, err := rw.Text(text, nil)
	if err != nil || !changed || strings.Contains(string(out), "ABCDEF") || !strings.Contains(string(out), Redacted) {
		t.Fatalf("text row: %q %v %v", out, changed, err)
	}
	bin := append([]byte{0x00, 0x00}, wire.AppendLenEncString(nil, []byte(grant))...)
	out, changed, err = rw.Binary(bin, nil)
	if err != nil || !changed || strings.Contains(string(out), "ABCDEF") {
		t.Fatalf("binary row: %q %v %v", out, changed, err)
	}
	v, _, _, ok := wire.LenEncString(out[2:])
	if !ok || !strings.HasSuffix(string(v), "PASSWORD "+Redacted) {
		t.Fatalf("binary value %q %v", v, ok)
	}
	if e.Count != 2 {
		t.Fatalf("count %d, want 2", e.Count)
	}
	plain := wire.AppendLenEncString(nil, []byte("GRANT SELECT ON `d`.* TO `u`@`%`"))
	if out, changed, err := rw.Text(plain, nil); err != nil || changed || &out[0] != &plain[0] {
		t.Fatalf("unchanged row was copied or changed: %v %v", changed, err)
	}
}

func FuzzScrub(f *testing.F) {
	for _, s := range []string{
		"GRANT ALL PRIVILEGES ON *.* TO `warden`@`%` IDENTIFIED BY PASSWORD '*28204CFEA3FE894BD7A1D7871AA53EED8D7FB076'",
		"CREATE USER `u`@`%` IDENTIFIED VIA ed25519 USING 'x' OR unix_socket",
		"IDENTIFIED WITH 'caching_sha2_password' AS 0x2441", "AS X'00'", "`", "'", "\"as\" '", "PASSWORD '\\",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, changed := Scrub(in, nil)
		if !changed {
			if len(out) != 0 {
				t.Fatalf("unchanged but wrote %q", out)
			}
			return
		}
		if !strings.Contains(string(out), Redacted) {
			t.Fatalf("changed without a redaction: %q", out)
		}
		// On well-formed text scrubbing is idempotent: what it wrote holds
		// nothing more to remove but its own redactions.
		if !terminated(in) {
			return
		}
		again, changed2 := Scrub(out, nil)
		if changed2 && string(again) != string(out) {
			t.Fatalf("not idempotent:\n%q\n%q", out, again)
		}
	})
}

// terminated reports whether every quoted token of s is closed.
func terminated(s []byte) bool {
	for i := 0; i < len(s); i++ {
		switch q := s[i]; q {
		case '\'', '"', '`':
			j := i + 1
			closed := false
			for j < len(s) {
				if s[j] == '\\' && q != '`' {
					j += 2
					continue
				}
				if s[j] == q {
					if j+1 < len(s) && s[j+1] == q {
						j += 2
						continue
					}
					closed = true
					break
				}
				j++
			}
			if !closed {
				return false
			}
			i = j
		}
	}
	return true
}
