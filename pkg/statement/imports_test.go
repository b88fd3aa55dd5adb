package statement

import (
	"go/build"
	"slices"
	"strings"
	"testing"
)

// TestImports: the package builds on the parser, pkg/sqltext and the
// journal's vocabulary only (doc.go), so that policy, masking and the proxy
// can all import it and importing it pulls in no journal engine or sink.
func TestImports(t *testing.T) {
	pkg, err := build.ImportDir(".", 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{
		"github.com/sqlwarden/sqlwarden/pkg/record":  true,
		"github.com/sqlwarden/sqlwarden/pkg/sqltext": true,
	}
	if !slices.Contains(pkg.Imports, "github.com/sqlwarden/sqlwarden/pkg/sqltext") {
		t.Fatalf("imports %q: pkg/sqltext missing, the list was not read", pkg.Imports)
	}
	for _, p := range pkg.Imports {
		if strings.HasPrefix(p, "github.com/sqlwarden/sqlwarden/") && !allowed[p] {
			t.Errorf("pkg/statement imports %s", p)
		}
	}
}
