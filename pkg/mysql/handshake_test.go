package mysql

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
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
			err := parseHandshakeResponse(tc.p, testServerCaps, &r)
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
		if err := parseHandshakeResponse(p, testServerCaps, &r); err != nil {
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
