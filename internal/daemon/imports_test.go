package daemon

import (
	"go/parser"
	"go/token"
	"io/fs"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestOnlyCmdImportsDaemon: the composition root is imported by the binary
// alone (doc.go), and imports neither the binary nor the tests.
func TestOnlyCmdImportsDaemon(t *testing.T) {
	const self = "github.com/sqlwarden/sqlwarden/internal/daemon"
	root := filepath.Join("..", "..")
	importers := map[string]bool{}
	files := 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if n := d.Name(); n == "testdata" || n == "node_modules" || (strings.HasPrefix(n, ".") && path != root) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(token.NewFileSet(), path, nil, parser.ImportsOnly)
		if err != nil {
			return err
		}
		files++
		dir, _ := filepath.Rel(root, filepath.Dir(path))
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if p == self {
				importers[filepath.ToSlash(dir)] = true
			}
			if dir == filepath.Join("internal", "daemon") && (strings.HasPrefix(p, "github.com/sqlwarden/sqlwarden/cmd/") ||
				strings.HasPrefix(p, "github.com/sqlwarden/sqlwarden/test/")) {
				t.Errorf("%s imports %s", path, p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !importers["cmd/sqlwarden"] {
		t.Fatalf("cmd/sqlwarden does not import %s (%d files read): the walk did not see the binary", self, files)
	}
	for dir := range importers {
		if dir != "cmd/sqlwarden" {
			t.Errorf("%s imports %s; only cmd/sqlwarden may", dir, self)
		}
	}
}
