package daemon

import (
	"fmt"
	"path/filepath"

	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

func toMaskRules(in []policy.MaskRule) []masking.Rule {
	out := make([]masking.Rule, 0, len(in))
	for _, r := range in {
		out = append(out, masking.Rule{Name: r.Name, Columns: r.Columns, ColumnPatterns: r.ColumnPatterns, Strategy: r.Strategy, Keep: r.Keep, Identities: r.Identities})
	}
	return out
}

// setupMasking builds the masker from the masking section and the policy's
// rules, which it follows across reloads.
func (d *Daemon) setupMasking(opts *proxy.Options, auditDir string) error {
	var mc masking.Settings
	if err := decodeNode(&d.cfg.Masking, &mc); err != nil {
		return fmt.Errorf("config masking: %w", err)
	}
	keyFile := mc.HashKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(filepath.Dir(filepath.Clean(auditDir)), "masking.key")
	}
	key, err := masking.LoadOrCreateKey(keyFile)
	if err != nil {
		return err
	}
	schema, err := d.schemaSource(mc.SchemaBackend)
	if err != nil {
		return err
	}
	cfg := masking.Config{Rules: toMaskRules(d.policy.Masking()), HashKey: key, Unknown: mc.Unknown, Probing: mc.Probing, Detectors: mc.Detectors}
	m := masking.New(cfg, schema)
	if err := m.SetRules(cfg); err != nil {
		return fmt.Errorf("masking rules: %w", err)
	}
	d.policy.OnReload(func(uint64) {
		c := cfg
		c.Rules = toMaskRules(d.policy.Masking())
		if err := m.SetRules(c); err != nil {
			d.log.Warn("masking rules from reloaded policy are invalid; masked identities are denied until fixed", "err", err)
		}
		m.InvalidateSchema()
	})
	opts.Masker = maskerAdapter{m}
	return nil
}

// schemaSource reads information_schema from the named backend (default:
// the first with an address); nil when there is none.
func (d *Daemon) schemaSource(name string) (masking.SchemaSource, error) {
	var be *proxy.Backend
	for _, b := range d.cfg.Backends {
		if (name == "" && b.Address != "") || b.Name == name {
			be = d.backends[b.Name]
			break
		}
	}
	if be == nil || be.Address == "" {
		return nil, nil
	}
	cred, err := be.Credential()
	if err != nil {
		return nil, err
	}
	db, err := masking.OpenSchemaPool(be.Address, cred.User, cred.Password, be.TLS)
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, db.Close)
	return masking.SQLSchema{DB: db}, nil
}
