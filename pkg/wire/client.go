package wire

import (
	"crypto/rsa"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// ClientConfig is how the proxy logs into a backend.
type ClientConfig struct {
	User, Password, DB string
	// Collation is the handshake's character set byte (a collation id).
	Collation uint8
	// Capabilities are optional capabilities to ask for (CLIENT_FOUND_ROWS,
	// CLIENT_MULTI_STATEMENTS, CLIENT_SESSION_TRACK, ...); each is kept only
	// when the server offers it.
	Capabilities uint32
	Attrs        map[string]string
	TLS          *tls.Config // nil: plaintext
	// ServerPublicKey is the server's RSA key for a full authentication
	// (caching_sha2_password, sha256_password) without TLS. Without it
	// such a login is refused: a key asked of the server in plaintext is
	// whoever answers' key, and the password would be theirs.
	ServerPublicKey *rsa.PublicKey
}

// ServerInfo is what a backend said while the proxy logged in.
type ServerInfo struct {
	Version      string
	ConnectionID uint32
	// Capabilities are the negotiated ones (what both sides have).
	Capabilities uint32
	Status       uint16
}

// clientBaseCaps are what the proxy's backend leg always speaks.
const clientBaseCaps = gm.CLIENT_PROTOCOL_41 | gm.CLIENT_SECURE_CONNECTION | gm.CLIENT_LONG_PASSWORD |
	gm.CLIENT_TRANSACTIONS | gm.CLIENT_PLUGIN_AUTH | gm.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA | gm.CLIENT_LONG_FLAG

// ErrUnsupportedAuth is a backend asking for an authentication the proxy
// will not do.
var ErrUnsupportedAuth = errors.New("unsupported backend authentication")

// ClientHandshake logs into the server on c as cfg says: it reads the
// greeting, upgrades to TLS when cfg.TLS is set, and answers the auth
// plugin the server asks for (mysql_native_password, caching_sha2_password
// with fast and full authentication — cleartext inside TLS, RSA key
// exchange without —, sha256_password, MariaDB's client_ed25519, and
// mysql_clear_password over TLS only). A server's refusal is a
// *ServerError, to be passed on to the client as it is.
func ClientHandshake(c *Conn, cfg *ClientConfig) (*ServerInfo, error) {
	p, seq, err := c.ReadPacket()
	if err != nil {
		return nil, fmt.Errorf("read greeting: %w", err)
	}
	if len(p) > 0 && p[0] == ErrHeader {
		e, err := ParseErr(p)
		if err != nil {
			return nil, err
		}
		return nil, e
	}
	g, scramble, plugin, err := parseGreeting(p)
	if err != nil {
		return nil, err
	}
	c.Seq = seq + 1
	want := clientBaseCaps | cfg.Capabilities
	if cfg.DB != "" {
		want |= gm.CLIENT_CONNECT_WITH_DB
	}
	if len(cfg.Attrs) > 0 {
		want |= gm.CLIENT_CONNECT_ATTRS
	}
	const required = gm.CLIENT_PROTOCOL_41 | gm.CLIENT_SECURE_CONNECTION | gm.CLIENT_PLUGIN_AUTH
	if g.Capabilities&required != required {
		return nil, fmt.Errorf("backend handshake: %w: the server lacks protocol 4.1 plugin authentication", ErrUnsupportedAuth)
	}
	caps := want & g.Capabilities
	tlsOn := cfg.TLS != nil
	if tlsOn {
		if g.Capabilities&gm.CLIENT_SSL == 0 {
			return nil, errors.New("backend handshake: the server does not offer TLS")
		}
		caps |= gm.CLIENT_SSL
		req := make([]byte, 32)
		binary.LittleEndian.PutUint32(req, caps)
		req[8] = cfg.Collation
		if err := c.WritePacket(req); err != nil {
			return nil, err
		}
		if err := c.Flush(); err != nil {
			return nil, err
		}
		tc := tls.Client(c.Unbuffered(), cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("tls handshake with backend: %w", err)
		}
		c.Reset(tc)
	}
	g.Capabilities = caps

	a := &clientAuth{c: c, cfg: cfg, tls: tlsOn, plugin: plugin, scramble: scramble}
	resp, err := a.response(plugin, scramble)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 32, 128)
	binary.LittleEndian.PutUint32(b, caps)
	b[8] = cfg.Collation
	b = append(b, cfg.User...)
	b = append(b, 0)
	b = AppendLenEncString(b, resp)
	if caps&gm.CLIENT_CONNECT_WITH_DB != 0 {
		b = append(b, cfg.DB...)
		b = append(b, 0)
	}
	b = append(b, plugin...)
	b = append(b, 0)
	if caps&gm.CLIENT_CONNECT_ATTRS != 0 {
		var attrs []byte
		for k, v := range cfg.Attrs {
			attrs = AppendLenEncString(attrs, []byte(k))
			attrs = AppendLenEncString(attrs, []byte(v))
		}
		b = AppendLenEncString(b, attrs)
	}
	if err := c.WritePacket(b); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	status, err := a.result()
	if err != nil {
		return nil, err
	}
	g.Status = status
	return g, nil
}

// parseGreeting reads a protocol-10 greeting: the server's identity, its
// capabilities, the scramble and its default auth plugin.
func parseGreeting(p []byte) (*ServerInfo, []byte, string, error) {
	bad := func(what string) (*ServerInfo, []byte, string, error) {
		return nil, nil, "", fmt.Errorf("parse greeting: %w: %s", ErrMalformed, what)
	}
	if len(p) < 1 || p[0] != 10 {
		return bad("not protocol 10")
	}
	v, n, ok := cstring(p[1:])
	if !ok {
		return bad("server version")
	}
	g := &ServerInfo{Version: string(v)}
	pos := 1 + n
	if pos+4+8+1+2 > len(p) {
		return bad("short")
	}
	g.ConnectionID = binary.LittleEndian.Uint32(p[pos:])
	pos += 4
	scramble := append([]byte(nil), p[pos:pos+8]...)
	pos += 9 // 8 bytes and a filler
	g.Capabilities = uint32(binary.LittleEndian.Uint16(p[pos:]))
	pos += 2
	plugin := gm.AUTH_NATIVE_PASSWORD
	if pos+16 <= len(p) {
		g.Status = binary.LittleEndian.Uint16(p[pos+1:])
		g.Capabilities |= uint32(binary.LittleEndian.Uint16(p[pos+3:])) << 16
		dataLen := int(p[pos+5])
		pos += 16 // charset, status, capabilities, length, 10 reserved
		rest := max(13, dataLen-8)
		if g.Capabilities&gm.CLIENT_SECURE_CONNECTION != 0 {
			if pos+rest > len(p) {
				return bad("scramble")
			}
			scramble = append(scramble, p[pos:pos+rest-1]...) // without the terminating NUL
			pos += rest
		}
		if g.Capabilities&gm.CLIENT_PLUGIN_AUTH != 0 && pos < len(p) {
			name, _, ok := cstring(p[pos:])
			if !ok {
				name = p[pos:]
			}
			if len(name) > 0 {
				plugin = string(name)
			}
		}
	}
	return g, scramble, plugin, nil
}

type clientAuth struct {
	c        *Conn
	cfg      *ClientConfig
	tls      bool
	plugin   string
	scramble []byte
	switched bool
}

// response is the first answer to plugin with the server's data.
func (a *clientAuth) response(plugin string, data []byte) ([]byte, error) {
	pw := a.cfg.Password
	switch plugin {
	case gm.AUTH_NATIVE_PASSWORD:
		if pw == "" {
			return nil, nil
		}
		if len(data) < 20 {
			return nil, fmt.Errorf("backend handshake: %w: short scramble", ErrMalformed)
		}
		return gm.CalcPassword(data[:20], []byte(pw)), nil
	case gm.AUTH_CACHING_SHA2_PASSWORD:
		if pw == "" {
			return nil, nil
		}
		if len(data) < 20 {
			return nil, fmt.Errorf("backend handshake: %w: short scramble", ErrMalformed)
		}
		return gm.CalcCachingSha2Password(data[:20], pw), nil
	case gm.AUTH_SHA256_PASSWORD:
		switch {
		case pw == "":
			return []byte{0}, nil
		case a.tls:
			return append([]byte(pw), 0), nil
		default:
			return a.encrypted()
		}
	case gm.AUTH_MARIADB_ED25519:
		if len(data) < 32 {
			return nil, fmt.Errorf("backend handshake: %w: short ed25519 nonce", ErrMalformed)
		}
		return gm.CalcEd25519Password(data[:32], pw)
	case gm.AUTH_CLEAR_PASSWORD:
		if !a.tls {
			return nil, fmt.Errorf("backend handshake: %w: mysql_clear_password without TLS would send the password in the clear", ErrUnsupportedAuth)
		}
		return append([]byte(pw), 0), nil
	}
	return nil, fmt.Errorf("backend handshake: %w: plugin %q", ErrUnsupportedAuth, plugin)
}

// result reads the server's answers until it accepts or refuses the login.
func (a *clientAuth) result() (uint16, error) {
	for range 8 {
		p, seq, err := a.c.ReadPacket()
		if err != nil {
			return 0, fmt.Errorf("read auth result: %w", err)
		}
		a.c.Seq = seq + 1
		if len(p) == 0 {
			return 0, fmt.Errorf("read auth result: %w: empty packet", ErrMalformed)
		}
		switch p[0] {
		case OKHeader:
			ok, err := ParseOK(p)
			if err != nil {
				return 0, err
			}
			return ok.Status, nil
		case ErrHeader:
			e, err := ParseErr(p)
			if err != nil {
				return 0, err
			}
			return 0, e
		case EOFHeader: // auth switch request
			if a.switched || len(p) < 2 {
				return 0, fmt.Errorf("backend handshake: %w: a second or old-style auth switch", ErrUnsupportedAuth)
			}
			a.switched = true
			name, n, ok := cstring(p[1:])
			if !ok {
				return 0, fmt.Errorf("backend handshake: %w: auth switch", ErrMalformed)
			}
			a.plugin = string(name)
			data := p[1+n:]
			if len(data) == 21 && data[20] == 0 {
				data = data[:20]
			}
			a.scramble = append([]byte(nil), data...)
			resp, err := a.response(a.plugin, a.scramble)
			if err != nil {
				return 0, err
			}
			if err := a.send(resp); err != nil {
				return 0, err
			}
		case 0x01: // more data: caching_sha2 / sha256 exchanges
			if err := a.moreData(p[1:]); err != nil {
				return 0, err
			}
		default:
			return 0, fmt.Errorf("read auth result: %w: packet 0x%02x", ErrMalformed, p[0])
		}
	}
	return 0, fmt.Errorf("backend handshake: %w: too many round trips", ErrMalformed)
}

func (a *clientAuth) send(b []byte) error {
	if err := a.c.WritePacket(b); err != nil {
		return err
	}
	return a.c.Flush()
}

func (a *clientAuth) moreData(data []byte) error {
	pw := a.cfg.Password
	if a.plugin == gm.AUTH_CACHING_SHA2_PASSWORD && len(data) == 1 {
		switch data[0] {
		case gm.CACHE_SHA2_FAST_AUTH:
			return nil // the OK follows
		case gm.CACHE_SHA2_FULL_AUTH:
			if a.tls {
				return a.send(append([]byte(pw), 0))
			}
			enc, err := a.encrypted()
			if err != nil {
				return err
			}
			return a.send(enc)
		}
		return fmt.Errorf("backend handshake: %w: caching_sha2 state %d", ErrMalformed, data[0])
	}
	if a.plugin != gm.AUTH_CACHING_SHA2_PASSWORD && a.plugin != gm.AUTH_SHA256_PASSWORD {
		return fmt.Errorf("backend handshake: %w: unexpected data for %s", ErrMalformed, a.plugin)
	}
	// A public key the server sent: never asked for, never used.
	return fmt.Errorf("backend handshake: %w: the server sent a public key the proxy did not ask for", ErrUnsupportedAuth)
}

// encrypted is the password for a full authentication without TLS,
// encrypted with the configured server key.
func (a *clientAuth) encrypted() ([]byte, error) {
	if a.cfg.ServerPublicKey == nil {
		return nil, fmt.Errorf("backend handshake: %w: %s full authentication without TLS needs the server's public key (server_public_key_file): one fetched in plaintext could be anyone's", ErrUnsupportedAuth, a.plugin)
	}
	enc, err := gm.EncryptPassword(a.cfg.Password, a.scramble, a.cfg.ServerPublicKey)
	if err != nil {
		return nil, fmt.Errorf("backend handshake: encrypt password: %w", err)
	}
	return enc, nil
}
