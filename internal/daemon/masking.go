package daemon

import (
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/masking"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
)

// maskingConfig is the `masking:` section of the daemon config. The rules
// themselves live in the policy file (so they reload with it); this section
// sets how the engine behaves.
type maskingConfig struct {
	// HashKeyFile holds the HMAC key of the hash strategy; generated (0600)
	// next to the audit journal on first start when empty.
	HashKeyFile string `yaml:"hash_key_file"`
	// Unknown decides statements over masked tables whose lineage cannot be
	// derived: deny (default) or allow.
	Unknown string `yaml:"unknown"`
	// Probing decides WHERE/ORDER BY/GROUP BY/JOIN over masked columns: deny (default) or allow.
	Probing   string                 `yaml:"probing"`
	Detectors masking.DetectorConfig `yaml:"detectors"`
	// SchemaBackend is the backend whose information_schema resolves views
	// and SELECT * (default: the first backend with an address).
	SchemaBackend string `yaml:"schema_backend"`
}

func toMaskRules(in []policy.MaskRule) []masking.Rule {
	out := make([]masking.Rule, 0, len(in))
	for _, r := range in {
		out = append(out, masking.Rule{Name: r.Name, Columns: r.Columns, ColumnPatterns: r.ColumnPatterns, Strategy: r.Strategy, Keep: r.Keep, Identities: r.Identities})
	}
	return out
}

func (d *Daemon) setupMasking(opts *proxy.Options, auditDir string) error {
	var mc maskingConfig
	if err := decodeNode(&d.cfg.Masking, &mc); err != nil {
		return fmt.Errorf("config masking: %w", err)
	}
	keyFile := mc.HashKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(filepath.Dir(filepath.Clean(auditDir)), "masking.key")
	}
	key, err := loadOrCreateKey(keyFile)
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

func loadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		k, derr := hex.DecodeString(strings.TrimSpace(string(b)))
		if derr != nil || len(k) < 16 {
			return nil, fmt.Errorf("masking hash key %s: want at least 16 hex-encoded bytes", path)
		}
		return k, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read masking hash key: %w", err)
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(path, []byte(hex.EncodeToString(k)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("write masking hash key: %w", err)
	}
	return k, nil
}

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
	mc := gomysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = cred.User, cred.Password, "tcp", be.Address
	mc.Timeout = 5 * time.Second
	if be.TLS != nil {
		if err := gomysql.RegisterTLSConfig("sqlwarden-schema", be.TLS); err != nil {
			return nil, err
		}
		mc.TLSConfig = "sqlwarden-schema"
	}
	connector, err := gomysql.NewConnector(mc)
	if err != nil {
		return nil, err
	}
	db := sql.OpenDB(connector)
	db.SetMaxOpenConns(2)
	d.closers = append(d.closers, db.Close)
	return masking.SQLSchema{DB: db}, nil
}
