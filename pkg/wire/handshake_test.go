package wire

import (
	"bufio"
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"testing"
	"time"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

const testServerCaps = ProxyCapabilities | gm.CLIENT_SSL

func TestParseHandshakeResponse(t *testing.T) {
	tests := []struct {
		name string
		p    []byte
		want HandshakeResponse
		err  bool
	}{
		{
			name: "lenenc auth, db, plugin and attributes",
			p: []byte{
				0x0d, 0xa2, 0x3a, 0x00, // capabilities: LONG_PASSWORD|LONG_FLAG|CONNECT_WITH_DB|PROTOCOL_41|TRANSACTIONS|SECURE_CONNECTION|MULTI_RESULTS|PLUGIN_AUTH|CONNECT_ATTRS|PLUGIN_AUTH_LENENC_CLIENT_DATA
				0x00, 0x00, 0x00, 0x01, // max packet 16 MiB
				0x2d,                                                                // charset 45 utf8mb4_general_ci
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // filler
				'a', 'g', 'e', 'n', 't', 0x00, // user
				0x03, 0xaa, 0xbb, 0xcc, // lenenc auth response (3 bytes)
				's', 'h', 'o', 'p', 0x00, // database
				'm', 'y', 's', 'q', 'l', '_', 'n', 'a', 't', 'i', 'v', 'e', '_', 'p', 'a', 's', 's', 'w', 'o', 'r', 'd', 0x00, // plugin
				0x0b,                // attributes: 11 bytes
				0x03, 'k', 'e', 'y', // key
				0x06, 'v', 'a', 'l', 'u', 'e', '!', // value
			},
			want: HandshakeResponse{User: "agent", AuthResponse: []byte{0xaa, 0xbb, 0xcc}, DB: "shop", AuthPlugin: gm.AUTH_NATIVE_PASSWORD,
				Charset: 45, MaxPacket: 1 << 24, Attrs: map[string]string{"key": "value!"}},
		},
		{
			name: "1-byte auth length, no plugin name, no db",
			p: []byte{
				0x05, 0x82, 0x00, 0x00, // capabilities: LONG_PASSWORD|LONG_FLAG|PROTOCOL_41|SECURE_CONNECTION
				0x00, 0x00, 0x00, 0x00, // max packet
				0x08,                                                                // charset latin1
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // filler
				'u', 0x00, // user
				0x02, 0x01, 0x02, // auth response length 2
			},
			want: HandshakeResponse{User: "u", AuthResponse: []byte{1, 2}, AuthPlugin: gm.AUTH_NATIVE_PASSWORD, Charset: 8},
		},
		{
			name: "plugin name without its NUL at the end of the packet",
			p: append([]byte{
				0x05, 0xa2, 0x08, 0x00, // capabilities: LONG_PASSWORD|LONG_FLAG|PROTOCOL_41|TRANSACTIONS|SECURE_CONNECTION|PLUGIN_AUTH
				0x00, 0x00, 0x00, 0x00, // max packet
				0x2d,                                                                // charset
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // filler
				'u', 0x00, // user
				0x00, // empty auth response
			}, "caching_sha2_password"...),
			want: HandshakeResponse{User: "u", AuthResponse: []byte{}, AuthPlugin: gm.AUTH_CACHING_SHA2_PASSWORD, Charset: 45},
		},
		{
			name: "user without terminator",
			p: []byte{
				0x05, 0x82, 0x00, 0x00, // capabilities
				0x00, 0x00, 0x00, 0x00, // max packet
				0x2d,                                                                // charset
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // filler
				'r', 'o', 'o', 't', // user, cut short
			},
			err: true,
		},
		{
			name: "auth response longer than the packet",
			p: []byte{
				0x05, 0x82, 0x00, 0x00, // capabilities: LONG_PASSWORD|LONG_FLAG|PROTOCOL_41|SECURE_CONNECTION
				0x00, 0x00, 0x00, 0x00, // max packet
				0x2d,                                                                // charset
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // filler
				'u', 0x00, // user
				0x14, 0x01, // says 20 bytes, has 1
			},
			err: true,
		},
		{
			name: "attributes longer than the packet",
			p: []byte{
				0x05, 0x82, 0x10, 0x00, // capabilities: LONG_PASSWORD|LONG_FLAG|PROTOCOL_41|SECURE_CONNECTION|CONNECT_ATTRS
				0x00, 0x00, 0x00, 0x00, // max packet
				0x2d,                                                                // charset
				0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // filler
				'u', 0x00, // user
				0x00,       // empty auth response
				0x7f, 0x01, // attributes: 127 bytes claimed, 1 present
			},
			err: true,
		},
		{
			name: "short header",
			p:    []byte{0x05, 0x82, 0x00, 0x00, 0x00},
			err:  true,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r HandshakeResponse
			err := parseHandshakeResponse(tc.p, testServerCaps, false, &r)
			if tc.err {
				if !errors.Is(err, ErrMalformed) {
					t.Fatalf("err = %v, want ErrMalformed", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.User != tc.want.User || string(r.AuthResponse) != string(tc.want.AuthResponse) || r.DB != tc.want.DB ||
				r.AuthPlugin != tc.want.AuthPlugin || r.Charset != tc.want.Charset || r.MaxPacket != tc.want.MaxPacket ||
				len(r.Attrs) != len(tc.want.Attrs) {
				t.Fatalf("got %+v\nwant %+v", r, tc.want)
			}
			for k, v := range tc.want.Attrs {
				if r.Attrs[k] != v {
					t.Fatalf("attr %s = %q, want %q", k, r.Attrs[k], v)
				}
			}
		})
	}
}

// TestHandshakeResponseCut: a handshake response larger than the pre-login
// bound is read without holding more than the bound; its connection
// attributes end at the last complete pair and the login goes on.
func TestHandshakeResponseCut(t *testing.T) {
	p := []byte{
		0x05, 0x82, 0x10, 0x00, // LONG_PASSWORD|LONG_FLAG|PROTOCOL_41|SECURE_CONNECTION|CONNECT_ATTRS
		0, 0, 0, 0, 0x2d,
	}
	p = append(p, make([]byte, 23)...)
	p = append(p, 'u', 0, 0) // user, empty auth response
	huge := bytes.Repeat([]byte{'x'}, 70000)
	var attrs []byte
	attrs = AppendLenEncString(attrs, []byte("program_name"))
	attrs = AppendLenEncString(attrs, []byte("agent"))
	attrs = AppendLenEncString(attrs, []byte("huge"))
	attrs = AppendLenEncString(attrs, huge)
	p = AppendLenEncInt(p, uint64(len(attrs)))
	p = append(p, attrs...)

	var wire bytes.Buffer
	wire.Write([]byte{byte(len(p)), byte(len(p) >> 8), byte(len(p) >> 16), 1})
	wire.Write(p)
	wire.WriteString("next")
	c := &Conn{r: bufio.NewReaderSize(&wire, BufferSize), MaxPacket: PreAuthMaxPacket}
	got, seq, cut, err := c.ReadPacketCapped()
	if err != nil || !cut || seq != 1 || len(got) != PreAuthMaxPacket || cap(got) > 2*PreAuthMaxPacket {
		t.Fatalf("ReadPacketCapped: %d bytes (cap %d), seq %d, cut %v, %v", len(got), cap(got), seq, cut, err)
	}
	if rest, _ := io.ReadAll(c.r); string(rest) != "next" {
		t.Fatalf("after the packet the stream holds %q", rest)
	}
	var r HandshakeResponse
	if err := parseHandshakeResponse(got, testServerCaps, false, &r); !errors.Is(err, ErrMalformed) {
		t.Fatalf("uncut parse of a cut packet: %v, want ErrMalformed", err)
	}
	if err := parseHandshakeResponse(got, testServerCaps, true, &r); err != nil {
		t.Fatal(err)
	}
	if r.User != "u" || len(r.Attrs) != 1 || r.Attrs["program_name"] != "agent" {
		t.Fatalf("cut response parsed as %+v", r)
	}
}

// FuzzParseHandshakeResponse: arbitrary responses never panic, and what
// parses has an auth plugin and a bounded attribute map.
func FuzzParseHandshakeResponse(f *testing.F) {
	hdr := append([]byte{0x0d, 0xa2, 0x3a, 0x00, 0, 0, 0, 1, 0x2d}, make([]byte, 23)...)
	f.Add(append(append([]byte(nil), hdr...), "agent\x00\x03abc\x00mysql_native_password\x00\x06\x01k\x01v\x01x"...))
	f.Add(append(append([]byte(nil), hdr...), "u\x00\xfc\x01"...))
	f.Add(append(append([]byte(nil), hdr...), "u\x00\x00db\x00caching_sha2_password"...))
	f.Add([]byte{0x05, 0x82, 0x00, 0x00})
	f.Fuzz(func(t *testing.T, p []byte) {
		var r HandshakeResponse
		if err := parseHandshakeResponse(p, testServerCaps, len(p)%2 == 1, &r); err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		if r.AuthPlugin == "" || len(r.Attrs) > 64 {
			t.Fatalf("parsed %+v", r)
		}
	})
}

func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

// coalescingConn holds back one write and sends it together with the next,
// like a client that writes the SSL request and its ClientHello at once.
type coalescingConn struct {
	net.Conn
	held []byte
}

func (c *coalescingConn) Write(b []byte) (int, error) {
	if c.held != nil {
		_, err := c.Conn.Write(append(c.held, b...))
		c.held = nil
		return len(b), err
	}
	return c.Conn.Write(b)
}

// TestServerHandshakeTLSReadAhead: the ClientHello arrives in the same
// segment as the SSL request; the TLS handshake must still see it.
func TestServerHandshakeTLSReadAhead(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		r   *HandshakeResponse
		err error
	}
	done := make(chan result, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer nc.Close()
		_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
		r, err := ServerHandshake(NewConn(nc, 0), &Greeting{ServerVersion: "test", Capabilities: ProxyCapabilities, Charset: 45, TLS: testTLSConfig(t)})
		done <- result{r, err}
	}()

	nc, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	c := NewConn(nc, 0)
	if _, _, err := c.ReadPacket(); err != nil { // greeting
		t.Fatal(err)
	}
	caps := uint32(gm.CLIENT_PROTOCOL_41 | gm.CLIENT_SECURE_CONNECTION | gm.CLIENT_PLUGIN_AUTH | gm.CLIENT_SSL)
	sslReq := binary.LittleEndian.AppendUint32(nil, caps)
	sslReq = append(sslReq, 0, 0, 0, 1, 45)
	sslReq = append(sslReq, make([]byte, 23)...)
	cc := &coalescingConn{Conn: nc, held: frame(1, sslReq)}
	tc := tls.Client(cc, &tls.Config{InsecureSkipVerify: true})
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	resp := append(append([]byte(nil), sslReq...), "agent\x00\x00mysql_native_password\x00"...)
	if _, err := tc.Write(frame(2, resp)); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	if !r.r.TLS || r.r.User != "agent" {
		t.Fatalf("response %+v", r.r)
	}
}

// memCache is a SHA2Cache for tests.
type memCache map[string]string

func (m memCache) Known(u, p string) bool { return m[u] == p }
func (m memCache) Remember(u, p string)   { m[u] = p }

// authPeer runs VerifyPassword on one end of a pipe while the test plays
// the client on the other.
func authPeer(t *testing.T, r *HandshakeResponse, password string, key *rsa.PrivateKey, cache SHA2Cache) (*Conn, chan error) {
	t.Helper()
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	done := make(chan error, 1)
	go func() {
		sc := NewConn(a, 0)
		sc.Seq = 2
		err := VerifyPassword(sc, r, password, key, cache)
		if err == nil {
			err = sc.Flush()
		}
		a.Close()
		done <- err
	}()
	return NewConn(b, 0), done
}

func TestVerifyPassword(t *testing.T) {
	scramble := []byte("abcdefghij0123456789")
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	resp := func(plugin string, auth []byte, tls bool) *HandshakeResponse {
		return &HandshakeResponse{User: "agent", AuthPlugin: plugin, AuthResponse: auth, Scramble: scramble, TLS: tls}
	}
	read := func(t *testing.T, c *Conn) []byte {
		t.Helper()
		p, seq, err := c.ReadPacket()
		if err != nil {
			t.Fatal(err)
		}
		c.Seq = seq + 1
		return append([]byte(nil), p...)
	}
	write := func(t *testing.T, c *Conn, p []byte) {
		t.Helper()
		if err := c.WritePacket(p); err != nil {
			t.Fatal(err)
		}
		if err := c.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("mysql_native_password", func(t *testing.T) {
		_, done := authPeer(t, resp(gm.AUTH_NATIVE_PASSWORD, gm.CalcPassword(scramble, []byte("pw")), false), "pw", nil, nil)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		_, done = authPeer(t, resp(gm.AUTH_NATIVE_PASSWORD, gm.CalcPassword(scramble, []byte("nope")), false), "pw", nil, nil)
		if err := <-done; !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("wrong password: %v", err)
		}
	})

	t.Run("auth switch from an unknown plugin", func(t *testing.T) {
		c, done := authPeer(t, resp("sha256_password", []byte{1}, false), "pw", nil, nil)
		p := read(t, c)
		want := append([]byte{0xfe}, "mysql_native_password\x00"...) // auth switch request, plugin
		want = append(append(want, scramble...), 0)                  // nonce, NUL
		if string(p) != string(want) {
			t.Fatalf("auth switch request % x", p)
		}
		write(t, c, gm.CalcPassword(scramble, []byte("pw")))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("caching_sha2 full auth over RSA, then fast auth", func(t *testing.T) {
		cache := memCache{}
		c, done := authPeer(t, resp(gm.AUTH_CACHING_SHA2_PASSWORD, gm.CalcCachingSha2Password(scramble, "pw"), false), "pw", key, cache)
		if p := read(t, c); string(p) != "\x01\x04" { // more data: perform full authentication
			t.Fatalf("got % x", p)
		}
		write(t, c, []byte{0x02}) // request public key
		p := read(t, c)
		if p[0] != 0x01 {
			t.Fatalf("public key packet % x", p[:8])
		}
		block, _ := pem.Decode(p[1:])
		pub, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		plain := append([]byte("pw"), 0)
		for i := range plain {
			plain[i] ^= scramble[i%len(scramble)]
		}
		enc, err := rsa.EncryptOAEP(sha1.New(), rand.Reader, pub.(*rsa.PublicKey), plain, nil)
		if err != nil {
			t.Fatal(err)
		}
		write(t, c, enc)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if !cache.Known("agent", "pw") {
			t.Fatal("full authentication not remembered")
		}
		c, done = authPeer(t, resp(gm.AUTH_CACHING_SHA2_PASSWORD, gm.CalcCachingSha2Password(scramble, "pw"), false), "pw", key, cache)
		if p := read(t, c); string(p) != "\x01\x03" { // fast authentication success
			t.Fatalf("got % x", p)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})

	t.Run("caching_sha2 full auth: cleartext only inside TLS", func(t *testing.T) {
		c, done := authPeer(t, resp(gm.AUTH_CACHING_SHA2_PASSWORD, gm.CalcCachingSha2Password(scramble, "pw"), true), "pw", nil, memCache{})
		read(t, c)
		write(t, c, []byte("pw\x00"))
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		c, done = authPeer(t, resp(gm.AUTH_CACHING_SHA2_PASSWORD, gm.CalcCachingSha2Password(scramble, "pw"), false), "pw", key, memCache{})
		read(t, c)
		write(t, c, []byte("pw\x00"))
		if err := <-done; !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("cleartext without TLS: %v", err)
		}
	})
}
