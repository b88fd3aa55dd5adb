package identity

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Credential is what the daemon logs into a backend with.
type Credential struct {
	User     string
	Password string
}

// CredentialSource yields a backend credential whose password is inline or in
// a file (a Kubernetes secret mount). The file is stat'ed on every Get and
// re-read only when its inode, size or mtime changed, so rotation is picked up
// without a restart.
type CredentialSource struct {
	user, password, file string

	mu   sync.Mutex
	seen fileStamp
	pass string
}

type fileStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

// NewCredentialSource returns a source for user with an inline password or,
// when passwordFile is set, the file's content minus its trailing newline.
func NewCredentialSource(user, password, passwordFile string) *CredentialSource {
	return &CredentialSource{user: user, password: password, file: passwordFile}
}

// Get returns the current credential.
func (c *CredentialSource) Get() (Credential, error) {
	if c.file == "" {
		return Credential{User: c.user, Password: c.password}, nil
	}
	st, err := os.Stat(c.file) // follows the ..data symlink of secret mounts
	if err != nil {
		return Credential{}, fmt.Errorf("stat password file: %w", err)
	}
	stamp := fileStamp{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		stamp.dev, stamp.ino = uint64(sys.Dev), sys.Ino
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if stamp == c.seen && c.seen != (fileStamp{}) {
		return Credential{User: c.user, Password: c.pass}, nil
	}
	b, err := os.ReadFile(c.file)
	if err != nil {
		return Credential{}, fmt.Errorf("read password file: %w", err)
	}
	c.pass = strings.TrimRight(string(b), "\r\n")
	c.seen = stamp
	return Credential{User: c.user, Password: c.pass}, nil
}
