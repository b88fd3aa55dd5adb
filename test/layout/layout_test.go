package layout

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/sqlwarden/sqlwarden/"

// allowed lists, per package, the sqlwarden packages it may import directly
// (what its doc.go says). A package missing from the table fails the test,
// so a new package states its place before it lands.
var allowed = map[string][]string{
	"cmd/sqlwarden":        {"internal/daemon", "pkg/approval", "pkg/audit", "pkg/audit/replay", "pkg/audit/sink", "pkg/config", "pkg/policy", "pkg/record", "redirect"},
	"internal/daemon":      {"pkg/approval", "pkg/audit", "pkg/audit/sink", "pkg/config", "pkg/identity", "pkg/k8s", "pkg/masking", "pkg/metrics", "pkg/policy", "pkg/proxy", "pkg/record", "pkg/statement", "redirect"},
	"internal/maskfixture": {"internal/testutil"},
	"internal/testoidc":    {},
	"internal/testutil":    {},
	"pkg/approval":         {"pkg/record"},
	"pkg/audit":            {"pkg/record"},
	"pkg/audit/replay":     {"pkg/audit", "pkg/record"},
	"pkg/audit/sink":       {"pkg/audit", "pkg/record"},
	"pkg/config":           {},
	"pkg/credscrub":        {"pkg/wire", "pkg/wire/rows"},
	"pkg/host":             {},
	"pkg/identity":         {"pkg/host", "pkg/record", "pkg/wire"},
	"pkg/k8s":              {"pkg/host"},
	"pkg/masking":          {"pkg/record", "pkg/sqltext", "pkg/statement", "pkg/wire", "pkg/wire/rows"},
	"pkg/metrics":          {"pkg/audit", "pkg/record"},
	"pkg/policy":           {"pkg/record", "pkg/sqltext", "pkg/statement"},
	"pkg/proxy":            {"pkg/credscrub", "pkg/host", "pkg/record", "pkg/sqltext", "pkg/statement", "pkg/wire", "pkg/wire/rows"},
	"pkg/proxy/proxytest":  {"pkg/wire", "pkg/wire/rows"},
	"pkg/record":           {},
	"pkg/sqltext":          {},
	"pkg/statement":        {"pkg/record", "pkg/sqltext"},
	"pkg/wire":             {},
	"pkg/wire/rows":        {"pkg/wire"},
	"redirect":             {"pkg/host"},
	"test/harness":         {"internal/testutil", "pkg/record"},
	"test/soak":            {"pkg/approval", "pkg/audit"},
	"test/e2e":             {},
	"test/layout":          {},
	"deploy":               {},
}

// TestImportRules: every package imports only what its doc.go allows, and
// pkg/record, the vocabulary every other package shares, only the standard
// library (importing a record type must not pull in NATS or the parser).
func TestImportRules(t *testing.T) {
	out, err := exec.Command("go", "list", "-f", `{{.ImportPath}} {{join .Imports " "}}`, module+"...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	seen := 0
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		pkg := strings.TrimPrefix(f[0], module)
		may, ok := allowed[pkg]
		if !ok {
			t.Errorf("%s is not in the layout table: add it with what it may import (and say so in its doc.go)", pkg)
			continue
		}
		seen++
		for _, imp := range f[1:] {
			if own, ok := strings.CutPrefix(imp, module); ok && !slices.Contains(may, own) {
				t.Errorf("%s imports %s, which its doc.go rules out", pkg, own)
			}
			if pkg == "pkg/record" && strings.Contains(strings.Split(imp, "/")[0], ".") {
				t.Errorf("pkg/record imports %s: it must import only the standard library", imp)
			}
		}
	}
	if seen < 20 {
		t.Fatalf("go list saw only %d packages of the module", seen)
	}
}
