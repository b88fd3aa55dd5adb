package daemon

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/config"
	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
)

// TestExampleFilesParse keeps examples/ honest: every key in the example
// config and policy is one the daemon reads, strictly.
func TestExampleFilesParse(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "examples", "config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		t.Fatalf("examples/config.yaml: %v", err)
	}
	var ids identity.Config
	if err := decodeNode(&cfg.Identities, &ids); err != nil {
		t.Fatalf("identities: %v", err)
	}
	if err := ids.Validate(); err != nil {
		t.Fatalf("identities: %v", err)
	}
	var ac audit.Config
	if err := decodeNode(&cfg.Audit, &ac); err != nil {
		t.Fatalf("audit: %v", err)
	}
	if len(ac.Sinks) != 3 || ac.Sync != "batch" {
		t.Fatalf("audit section decoded as %+v", ac)
	}
	var mc masking.Settings
	if err := decodeNode(&cfg.Masking, &mc); err != nil {
		t.Fatalf("masking: %v", err)
	}
	pol, err := os.ReadFile(filepath.Join("..", "..", "examples", "policy.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := policy.Check(pol); err != nil {
		t.Fatalf("examples/policy.yaml: %v", err)
	}
}
