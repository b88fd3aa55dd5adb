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

func TestNamesParserAlias(t *testing.T) {
	for sql, want := range map[string]bool{
		"SELECT char_func(1)":                     true,
		"SELECT `INSERT_FUNC`(1)":                 true,
		"select x from t where Char_Func(a)":      true,
		"SELECT CHAR(65), INSERT('a', 1, 1, 'b')": false,
		"SELECT my_char_func(1)":                  false,
		"SELECT char_funcs(1)":                    false,
		"SELECT _func":                            false,
	} {
		if got := NamesParserAlias(sql); got != want {
			t.Errorf("NamesParserAlias(%q) = %v, want %v", sql, got, want)
		}
	}
}
