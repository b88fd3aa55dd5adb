package sqltext

import "testing"

func TestMentionsPassword(t *testing.T) {
	for sql, want := range map[string]bool{
		"SET PASSWORD = PASSWORD('x')":                                      true,
		"CREATE SERVER s FOREIGN DATA WRAPPER mysql OPTIONS (PASSWORD 'x')": true,
		"CHANGE MASTER TO MASTER_PASSWORD='x'":                              true,
		"do password('x')":                                                  true,
		"CREATE USER u IdEnTiFiEd VIA ed25519 USING 'x'":                    true,
		"SELECT c FROM sbtest1 WHERE id = 1":                                false,
		"SELECT 'passwor'":                                                  false,
		"":                                                                  false,
		"p":                                                                 false,
	} {
		if got := MentionsPassword(sql); got != want {
			t.Errorf("MentionsPassword(%q) = %v, want %v", sql, got, want)
		}
	}
}

func FuzzMentionsPassword(f *testing.F) {
	f.Add("SET PASSWORD = 'x'")
	f.Add("IDENTIFIED")
	f.Fuzz(func(t *testing.T, sql string) {
		MentionsPassword(sql) // no panic, whatever the bytes
	})
}
