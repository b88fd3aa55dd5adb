package masking

import (
	"crypto/rand"
	"crypto/tls"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
)

// Settings is the `masking:` section of the daemon config. The rules
// themselves live in the policy file (so they reload with it); this section
// sets how the engine behaves.
type Settings struct {
	// HashKeyFile holds the HMAC key of the hash strategy; generated (0600)
	// next to the audit journal on first start when empty.
	HashKeyFile string `yaml:"hash_key_file"`
	// Unknown decides statements over masked tables whose lineage cannot be
	// derived: deny (default) or allow.
	Unknown string `yaml:"unknown"`
	// Probing decides WHERE/ORDER BY/GROUP BY/JOIN over masked columns: deny (default) or allow.
	Probing   string         `yaml:"probing"`
	Detectors DetectorConfig `yaml:"detectors"`
	// SchemaBackend is the backend whose information_schema resolves views
	// and SELECT * (default: the first backend with an address).
	SchemaBackend string `yaml:"schema_backend"`
}

// LoadOrCreateKey reads the hash strategy's hex-encoded key from path, or
// writes a new random one there (0600) when the file does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
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

// OpenSchemaPool opens the small pool of backend connections, over a
// second MySQL driver, that SQLSchema reads information_schema through
// (tc nil: no TLS). The caller closes the pool.
func OpenSchemaPool(addr, user, password string, tc *tls.Config) (*sql.DB, error) {
	mc := gomysql.NewConfig()
	mc.User, mc.Passwd, mc.Net, mc.Addr = user, password, "tcp", addr
	mc.Timeout = 5 * time.Second
	if tc != nil {
		if err := gomysql.RegisterTLSConfig("sqlwarden-schema", tc); err != nil {
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
	return db, nil
}
