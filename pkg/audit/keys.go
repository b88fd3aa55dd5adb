package audit

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// LoadOrCreateKey reads the ed25519 checkpoint signing key from path (PKCS#8
// PEM). If the file does not exist it generates one, writes it with mode 0600
// and exports the public key (PKIX PEM) to path+".pub". created reports
// whether a key was generated.
func LoadOrCreateKey(path string) (key ed25519.PrivateKey, created bool, err error) {
	b, err := os.ReadFile(path)
	if err == nil {
		key, err := parsePrivateKey(b)
		if err != nil {
			return nil, false, fmt.Errorf("read checkpoint key %s: %w", path, err)
		}
		if _, err := os.Stat(path + ".pub"); errors.Is(err, os.ErrNotExist) {
			if err := writePublicKey(path+".pub", key.Public().(ed25519.PublicKey)); err != nil {
				return nil, false, err
			}
		}
		return key, false, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, false, fmt.Errorf("read checkpoint key: %w", err)
	}
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, fmt.Errorf("generate checkpoint key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, false, fmt.Errorf("encode checkpoint key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, false, fmt.Errorf("create key dir: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, false, fmt.Errorf("write checkpoint key: %w", err)
	}
	if err := writePublicKey(path+".pub", pub); err != nil {
		return nil, false, err
	}
	return priv, true, nil
}

func writePublicKey(path string, pub ed25519.PublicKey) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Errorf("encode public key: %w", err)
	}
	if err := writeFileAtomic(path, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write public key: %w", err)
	}
	return nil
}

func parsePrivateKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, errors.New("no PEM block")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, err
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("key is %T, want ed25519", k)
	}
	return priv, nil
}

// ReadPublicKey reads an ed25519 public key: PKIX PEM ("PUBLIC KEY"), or a
// bare base64 or hex encoding of the 32 key bytes.
func ReadPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	return ParsePublicKey(b)
}

// ParsePublicKey parses what ReadPublicKey reads.
func ParsePublicKey(b []byte) (ed25519.PublicKey, error) {
	if blk, _ := pem.Decode(b); blk != nil {
		k, err := x509.ParsePKIXPublicKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse public key: %w", err)
		}
		pub, ok := k.(ed25519.PublicKey)
		if !ok {
			return nil, fmt.Errorf("parse public key: key is %T, want ed25519", k)
		}
		return pub, nil
	}
	s := string(trimSpace(b))
	if raw, err := hex.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) == ed25519.PublicKeySize {
		return ed25519.PublicKey(raw), nil
	}
	return nil, errors.New("parse public key: not PEM, hex or base64 of 32 bytes")
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\n' || b[0] == '\r' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\n' || b[len(b)-1] == '\r' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// KeyID is a short stable identifier of a public key: the first 8 bytes of
// its SHA-256, in hex.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// CheckpointMessage is the exact text a checkpoint signature covers. It binds
// the node, the record count (seq of the last covered record), the chain head
// (that record's hash), the checkpoint's own timestamp and whether it was the
// final checkpoint of a clean shutdown.
func CheckpointMessage(node string, records uint64, head string, ts time.Time, final bool, intervalMS int64) []byte {
	b := make([]byte, 0, 256)
	b = append(b, "sqlwarden checkpoint v1\nnode "...)
	b = append(b, node...)
	b = append(b, "\nrecords "...)
	b = strconv.AppendUint(b, records, 10)
	b = append(b, "\nhead "...)
	b = append(b, head...)
	b = append(b, "\ntime "...)
	b = append(b, ts.UTC().Format(time.RFC3339Nano)...)
	b = append(b, "\nfinal "...)
	b = strconv.AppendBool(b, final)
	b = append(b, "\ninterval_ms "...)
	b = strconv.AppendInt(b, intervalMS, 10)
	b = append(b, '\n')
	return b
}

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
