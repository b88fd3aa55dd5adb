package mysql

import "testing"

func TestExecutable(t *testing.T) {
	for in, want := range map[string]string{
		"SELECT 1":                        "SELECT 1",
		"SELECT 1 /* just a comment */":   "SELECT 1 /* just a comment */",
		"SELECT 1 /*M! ; DROP TABLE t */": "SELECT 1 /*!  ; DROP TABLE t */",
		"SELECT id /*m!100000 , card */":  "SELECT id /*!  , card */",
		"/*!50000 DROP TABLE t */":        "/*!50000 DROP TABLE t */",
		"SELECT '/*M!' AS looks_like_one": "SELECT '/*! ' AS looks_like_one", // over-eager inside a string: only ever stricter
	} {
		if got := Executable(in); got != want {
			t.Errorf("Executable(%q) = %q, want %q", in, got, want)
		}
	}
}
