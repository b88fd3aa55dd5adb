package proxy

import (
	"context"
	"maps"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

func TestBackendAttrs(t *testing.T) {
	libmariadb := map[string]string{"_client_name": "libmariadb", "_client_version": "3.3.20", "_os": "Linux",
		"_pid": "4242", "_platform": "x86_64", "_server_host": "127.0.0.1", "program_name": "mysql"}
	got := backendAttrs(libmariadb, "agent-a", "s1")
	want := maps.Clone(libmariadb)
	want[attrIdentity], want[attrSession] = "agent-a", "s1"
	if !maps.Equal(got, want) {
		t.Fatalf("attrs %v, want %v", got, want)
	}

	// A client cannot speak for sqlwarden.
	got = backendAttrs(map[string]string{attrIdentity: "root", attrSession: "x", "sqlwarden_other": "y"}, "agent-a", "s1")
	if !maps.Equal(got, map[string]string{attrIdentity: "agent-a", attrSession: "s1"}) {
		t.Fatalf("client's sqlwarden_ attributes kept: %v", got)
	}

	// Over the limit: sqlwarden's own stay, the client's are cut to fit.
	big := map[string]string{"a": strings.Repeat("x", 40000), "b": strings.Repeat("é", 20000), "c": "small", "program_name": "agent"}
	got = backendAttrs(big, "agent-a", "s1")
	total := 0
	for k, v := range got {
		total += attrLen(k, v)
	}
	if total > maxAttrBytes {
		t.Fatalf("attribute block of %d bytes", total)
	}
	if got[attrIdentity] != "agent-a" || got[attrSession] != "s1" || got["a"] != big["a"] {
		t.Fatalf("cut attrs: identity %q session %q a %d bytes", got[attrIdentity], got[attrSession], len(got["a"]))
	}
	if b := got["b"]; len(b) == 0 || len(b) >= len(big["b"]) || !strings.HasPrefix(big["b"], b) || strings.Count(b, "é")*2 != len(b) {
		t.Fatalf("the attribute crossing the limit keeps %d bytes", len(b))
	}
	if _, ok := got["c"]; ok {
		t.Fatalf("an attribute after the cut was kept")
	}
	if maxAttrBytes-total > 3 {
		t.Fatalf("cut left %d bytes unused", maxAttrBytes-total)
	}
}

// FuzzBackendAttrs: whatever the client sends, the login's attribute block
// fits what a server accepts, carries sqlwarden's own attributes, and keeps
// each client attribute whole or (the one the cut falls in) as a prefix.
func FuzzBackendAttrs(f *testing.F) {
	f.Add("program_name", "mysql", 1, "")
	f.Add("big", "x", 70000, "")
	f.Add("big", "é", 40000, "\xff")
	f.Add("sqlwarden_identity", "root", 1, "")
	f.Add("k", "\xe2\x82", 30000, "\xac")
	f.Add("bytes", "\xffx", 35000, "") // not UTF-8 at all: kept as sent, cut once
	f.Fuzz(func(t *testing.T, k, unit string, n int, tail string) {
		if n < 0 || n > 1<<17 || len(unit)*n > 1<<18 {
			return
		}
		v := strings.Repeat(unit, n) + tail
		client := map[string]string{k: v, k + "2": v, "small": "s"}
		got := backendAttrs(client, "agent", "s1")
		total := 0
		for gk, gv := range got {
			total += attrLen(gk, gv)
			if strings.HasPrefix(gk, "sqlwarden_") {
				continue
			}
			if cv, ok := client[gk]; !ok || !strings.HasPrefix(cv, gv) {
				t.Fatalf("attribute %q = %d bytes, not a prefix of the client's", gk, len(gv))
			}
		}
		if total > maxAttrBytes {
			t.Fatalf("attribute block of %d bytes", total)
		}
		if got[attrIdentity] != "agent" || got[attrSession] != "s1" {
			t.Fatalf("sqlwarden's attributes: %q %q", got[attrIdentity], got[attrSession])
		}
	})
}

// TestLoginCarriesExactlyTheAttributes logs in with the proxy's backend
// login to a listener that reads it with the proxy's own handshake parser:
// the attributes are exactly the ones given.
func TestLoginCarriesExactlyTheAttributes(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan map[string]string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- nil
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(10 * time.Second))
		mc := wire.NewConn(c, 1<<20)
		hs, err := wire.ServerHandshake(mc, &wire.Greeting{ServerVersion: "10.11.0-MariaDB", ConnectionID: 1,
			Capabilities: wire.ProxyCapabilities, Charset: 45})
		if err != nil {
			got <- nil
			return
		}
		got <- hs.Attrs
		_ = mc.WritePacket(wire.OKPacket(0, 0, 2, 0))
		_ = mc.Flush()
	}()
	want := map[string]string{"_client_name": "libmariadb", attrSession: "s1", "program_name": "mysql"}
	c, _, err := dialLogin(context.Background(), (&net.Dialer{}).DialContext, ln.Addr().String(), &Backend{}, 1<<20, &wire.ClientConfig{User: "u", Collation: 45, Attrs: maps.Clone(want)})
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if a := <-got; !maps.Equal(a, want) {
		t.Fatalf("login attributes %v, want %v", a, want)
	}
}
