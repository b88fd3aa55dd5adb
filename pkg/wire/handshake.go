package wire

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// ProxyCapabilities are the capabilities the proxy offers clients. They are
// the ones it can honour end to end through a backend connection opened by
// go-mysql's client: no CLIENT_DEPRECATE_EOF or CLIENT_SESSION_TRACK (the
// backend leg never negotiates them, and translating reply formats would
// mean rewriting every result set), no compression (clients that ask simply
// don't get it; the protocol lets a server decline), no query attributes.
const ProxyCapabilities = gm.CLIENT_LONG_PASSWORD | gm.CLIENT_FOUND_ROWS | gm.CLIENT_LONG_FLAG |
	gm.CLIENT_CONNECT_WITH_DB | gm.CLIENT_LOCAL_FILES | gm.CLIENT_IGNORE_SPACE | gm.CLIENT_PROTOCOL_41 |
	gm.CLIENT_INTERACTIVE | gm.CLIENT_TRANSACTIONS | gm.CLIENT_SECURE_CONNECTION |
	gm.CLIENT_MULTI_STATEMENTS | gm.CLIENT_MULTI_RESULTS | gm.CLIENT_PS_MULTI_RESULTS |
	gm.CLIENT_PLUGIN_AUTH | gm.CLIENT_CONNECT_ATTRS | gm.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA

// Greeting is what the proxy says first to a client.
type Greeting struct {
	ServerVersion string
	ConnectionID  uint32
	Capabilities  uint32
	Charset       uint8
	Status        uint16
	AuthPlugin    string // plugin offered first (mysql_native_password by default)
	TLS           *tls.Config
}

// HandshakeResponse is the client's answer to the greeting.
type HandshakeResponse struct {
	Capabilities uint32
	MaxPacket    uint32
	Charset      uint8
	User         string
	AuthResponse []byte
	DB           string
	AuthPlugin   string
	Attrs        map[string]string
	TLS          bool
	Scramble     []byte // the 20-byte nonce sent in the greeting
}

// ErrClientGone marks a client that hung up during the handshake.
var ErrClientGone = errors.New("client closed connection during handshake")

// ServerHandshake sends the greeting, upgrades to TLS when the client asks
// (and g.TLS is set), and returns the client's handshake response. It does
// not decide whether the client may in: that is the caller's (identity's) job.
func ServerHandshake(c *Conn, g *Greeting) (*HandshakeResponse, error) {
	scramble := make([]byte, 20)
	if _, err := rand.Read(scramble); err != nil {
		return nil, err
	}
	for i := range scramble { // printable, never NUL: some clients treat it as a C string
		scramble[i] = scramble[i]&0x7f | 1
		if scramble[i] == '$' {
			scramble[i] = '#'
		}
	}
	caps := g.Capabilities
	if g.TLS != nil {
		caps |= gm.CLIENT_SSL
	}
	plugin := g.AuthPlugin
	if plugin == "" {
		plugin = gm.AUTH_NATIVE_PASSWORD
	}
	b := make([]byte, 0, 128)
	b = append(b, 10) // protocol version
	b = append(b, g.ServerVersion...)
	b = append(b, 0)
	b = binary.LittleEndian.AppendUint32(b, g.ConnectionID)
	b = append(b, scramble[:8]...)
	b = append(b, 0)
	b = append(b, byte(caps), byte(caps>>8))
	b = append(b, g.Charset)
	b = append(b, byte(g.Status), byte(g.Status>>8))
	b = append(b, byte(caps>>16), byte(caps>>24))
	b = append(b, 21)
	b = append(b, make([]byte, 10)...)
	b = append(b, scramble[8:]...)
	b = append(b, 0)
	b = append(b, plugin...)
	b = append(b, 0)
	c.Seq = 0
	if err := c.WritePacket(b); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}

	p, seq, cut, err := c.ReadPacketCapped()
	if err != nil {
		if errors.Is(err, ErrMalformed) {
			return nil, ErrClientGone
		}
		return nil, err
	}
	c.Seq = seq + 1
	if len(p) < 4 {
		return nil, fmt.Errorf("read handshake response: %w: %d bytes", ErrMalformed, len(p))
	}
	ccaps := binary.LittleEndian.Uint32(p)
	if ccaps&gm.CLIENT_PROTOCOL_41 == 0 {
		return nil, fmt.Errorf("read handshake response: %w: pre-4.1 protocol", ErrMalformed)
	}
	resp := &HandshakeResponse{Scramble: scramble}
	if ccaps&gm.CLIENT_SSL != 0 && len(p) == 32 {
		if g.TLS == nil {
			return nil, fmt.Errorf("read handshake response: %w: SSL request but TLS is not offered", ErrMalformed)
		}
		// The client may send its ClientHello right behind the SSL request,
		// so the framing's read buffer can already hold TLS bytes.
		tc := tls.Server(c.Unbuffered(), g.TLS)
		if err := tc.Handshake(); err != nil {
			return nil, fmt.Errorf("tls handshake with client: %w", err)
		}
		c.Reset(tc)
		resp.TLS = true
		p, seq, cut, err = c.ReadPacketCapped()
		if err != nil {
			return nil, err
		}
		c.Seq = seq + 1
	}
	if err := parseHandshakeResponse(p, caps, cut, resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// parseHandshakeResponse reads a handshake response. cut says the packet's
// tail was dropped on read: the connection attributes then end at the last
// complete pair (the login itself never depends on them).
func parseHandshakeResponse(p []byte, serverCaps uint32, cut bool, r *HandshakeResponse) error {
	bad := func(what string) error {
		return fmt.Errorf("parse handshake response: %w: %s", ErrMalformed, what)
	}
	if len(p) < 32 {
		return bad("short header")
	}
	r.Capabilities = binary.LittleEndian.Uint32(p) & (serverCaps | gm.CLIENT_SSL)
	r.MaxPacket = binary.LittleEndian.Uint32(p[4:])
	r.Charset = p[8]
	pos := 32
	user, n, ok := cstring(p[pos:])
	if !ok {
		return bad("user")
	}
	r.User = string(user)
	pos += n
	switch {
	case r.Capabilities&gm.CLIENT_PLUGIN_AUTH_LENENC_CLIENT_DATA != 0:
		s, _, n, ok := LenEncString(p[pos:])
		if !ok {
			return bad("auth response")
		}
		r.AuthResponse = s
		pos += n
	case r.Capabilities&gm.CLIENT_SECURE_CONNECTION != 0:
		if pos >= len(p) || pos+1+int(p[pos]) > len(p) {
			return bad("auth response")
		}
		l := int(p[pos])
		r.AuthResponse = p[pos+1 : pos+1+l]
		pos += 1 + l
	default:
		s, n, ok := cstring(p[pos:])
		if !ok {
			return bad("auth response")
		}
		r.AuthResponse = s
		pos += n
	}
	r.AuthResponse = bytes.Clone(r.AuthResponse)
	if r.Capabilities&gm.CLIENT_CONNECT_WITH_DB != 0 && pos < len(p) {
		db, n, ok := cstring(p[pos:])
		if !ok {
			return bad("database")
		}
		r.DB = string(db)
		pos += n
	}
	if r.Capabilities&gm.CLIENT_PLUGIN_AUTH != 0 && pos < len(p) {
		pl, n, ok := cstring(p[pos:])
		if !ok { // some clients omit the terminator at the end of the packet
			pl, n = p[pos:], len(p)-pos
		}
		r.AuthPlugin = string(pl)
		pos += n
	}
	if r.AuthPlugin == "" {
		r.AuthPlugin = gm.AUTH_NATIVE_PASSWORD
	}
	if r.Capabilities&gm.CLIENT_CONNECT_ATTRS != 0 && pos < len(p) {
		total, _, n, ok := LenEncInt(p[pos:])
		if !ok {
			if cut {
				return nil
			}
			return bad("connection attributes")
		}
		pos += n
		end := len(p)
		if total <= uint64(len(p)-pos) {
			end = pos + int(total)
		} else if !cut {
			return bad("connection attributes")
		}
		r.Attrs = make(map[string]string)
		for pos < end {
			k, _, n, ok := LenEncString(p[pos:end])
			if !ok {
				if cut {
					break
				}
				return bad("connection attribute key")
			}
			pos += n
			v, _, n, ok := LenEncString(p[pos:end])
			if !ok {
				if cut {
					break
				}
				return bad("connection attribute value")
			}
			pos += n
			if len(r.Attrs) < 64 {
				r.Attrs[string(k)] = string(v)
			}
		}
	}
	return nil
}

// AuthSwitch asks the client to authenticate again with plugin, sending data
// as the plugin's nonce, and returns the client's response.
func AuthSwitch(c *Conn, plugin string, data []byte) ([]byte, error) {
	b := make([]byte, 0, 2+len(plugin)+len(data))
	b = append(b, EOFHeader)
	b = append(b, plugin...)
	b = append(b, 0)
	b = append(b, data...)
	return exchange(c, b)
}

// exchange writes one auth packet and reads the client's reply.
func exchange(c *Conn, payload []byte) ([]byte, error) {
	if err := c.WritePacket(payload); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	p, seq, err := c.ReadPacket()
	if err != nil {
		return nil, err
	}
	c.Seq = seq + 1
	return bytes.Clone(p), nil
}

// Cleartext switches the client to mysql_clear_password and returns what it
// sends (e.g. a workload token in explicit mode). Only call it over TLS.
func Cleartext(c *Conn) (string, error) {
	p, err := AuthSwitch(c, gm.AUTH_CLEAR_PASSWORD, nil)
	if err != nil {
		return "", err
	}
	return string(bytes.TrimRight(p, "\x00")), nil
}

// ErrAuthFailed is returned when a client's password does not verify.
var ErrAuthFailed = errors.New("password does not match")

// SHA2Cache remembers users that passed a caching_sha2_password full
// authentication, so their next login can use the fast path, as MySQL does.
type SHA2Cache interface {
	Known(user string, password string) bool
	Remember(user string, password string)
}

// VerifyPassword authenticates a client whose password the proxy knows
// (a static identity in explicit mode) with the plugin the client chose:
// mysql_native_password, or caching_sha2_password with fast and full
// authentication (cleartext over TLS, RSA key exchange without). Other
// plugins are switched to mysql_native_password.
func VerifyPassword(c *Conn, r *HandshakeResponse, password string, key *rsa.PrivateKey, cache SHA2Cache) error {
	switch r.AuthPlugin {
	case gm.AUTH_CACHING_SHA2_PASSWORD:
		return verifySHA2(c, r, password, key, cache)
	case gm.AUTH_NATIVE_PASSWORD:
		return checkNative(r.Scramble, r.AuthResponse, password)
	default:
		resp, err := AuthSwitch(c, gm.AUTH_NATIVE_PASSWORD, append(bytes.Clone(r.Scramble), 0))
		if err != nil {
			return err
		}
		return checkNative(r.Scramble, resp, password)
	}
}

func checkNative(scramble, resp []byte, password string) error {
	if password == "" {
		if len(resp) == 0 {
			return nil
		}
		return ErrAuthFailed
	}
	want := gm.CalcPassword(scramble, []byte(password))
	if subtle.ConstantTimeCompare(want, resp) != 1 {
		return ErrAuthFailed
	}
	return nil
}

// caching_sha2_password protocol bytes.
const (
	sha2MoreData        = 0x01
	sha2RequestKey      = 0x02
	sha2FastAuthSuccess = 0x03
	sha2PerformFullAuth = 0x04
)

func verifySHA2(c *Conn, r *HandshakeResponse, password string, key *rsa.PrivateKey, cache SHA2Cache) error {
	if len(r.AuthResponse) == 0 {
		if password == "" {
			return nil
		}
		return ErrAuthFailed
	}
	if cache != nil && cache.Known(r.User, password) {
		want := gm.CalcCachingSha2Password(r.Scramble, password)
		if subtle.ConstantTimeCompare(want, r.AuthResponse) != 1 {
			return ErrAuthFailed
		}
		return c.WritePacket([]byte{sha2MoreData, sha2FastAuthSuccess})
	}
	// Full authentication: the client must send the password itself.
	resp, err := exchange(c, []byte{sha2MoreData, sha2PerformFullAuth})
	if err != nil {
		return err
	}
	var clear []byte
	switch {
	case r.TLS:
		clear = bytes.TrimRight(resp, "\x00")
	case len(resp) == 1 && resp[0] == sha2RequestKey:
		if key == nil {
			return fmt.Errorf("caching_sha2_password: %w: no RSA key for a client without TLS", ErrAuthFailed)
		}
		der, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
		if err != nil {
			return err
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		enc, err := exchange(c, append([]byte{sha2MoreData}, pemKey...))
		if err != nil {
			return err
		}
		plain, err := rsa.DecryptOAEP(sha1.New(), rand.Reader, key, enc, nil)
		if err != nil {
			return fmt.Errorf("caching_sha2_password: decrypt password: %w", ErrAuthFailed)
		}
		for i := range plain {
			plain[i] ^= r.Scramble[i%len(r.Scramble)]
		}
		clear = bytes.TrimRight(plain, "\x00")
	default:
		return fmt.Errorf("caching_sha2_password: %w: cleartext password without TLS refused", ErrAuthFailed)
	}
	if subtle.ConstantTimeCompare(clear, []byte(password)) != 1 {
		return ErrAuthFailed
	}
	if cache != nil {
		cache.Remember(r.User, password)
	}
	return nil
}

// AcceptAny completes the client's chosen plugin without checking a password:
// used when the workload's identity was already verified out of band (the
// eBPF origin and its token) and the DSN password means nothing.
func AcceptAny(c *Conn, r *HandshakeResponse) error {
	if r.AuthPlugin == gm.AUTH_CACHING_SHA2_PASSWORD && len(r.AuthResponse) > 0 {
		return c.WritePacket([]byte{sha2MoreData, sha2FastAuthSuccess})
	}
	return nil
}
