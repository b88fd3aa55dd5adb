package proxy_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy/proxytest"
)

// A session hands its CPU to a peer after a flush only when that peer runs
// on this machine, leg by leg: a loopback socket counts, an in-memory pipe
// does not, and Options.HandOff off turns it off for both.
func TestSessionLegsHandOffToPeersOnThisHost(t *testing.T) {
	for _, tc := range []struct {
		name                     string
		handOff, client, backend bool // the option; loopback (else a pipe) on each leg
		wantClient, wantBackend  bool
	}{
		{"on, both peers over loopback", true, true, true, true, true},
		{"on, the client over loopback, the backend over a pipe", true, true, false, true, false},
		{"on, the client over a pipe, the backend over loopback", true, false, true, false, true},
		{"off, both peers over loopback", false, true, true, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			beLn := listenLoopback(t)
			h := newHarness(t, func(o *proxy.Options) {
				o.HandOff = tc.handOff
				if tc.backend {
					o.Dial = func(ctx context.Context, _, _ string) (net.Conn, error) {
						var d net.Dialer
						return d.DialContext(ctx, "tcp", beLn.Addr().String())
					}
				}
			})
			go h.be.Serve(beLn)

			c := h.connect
			if tc.client {
				c = connectOverLoopback(h)
			}
			if err := c(t).Query("SELECT 1"); err != nil {
				t.Fatal(err)
			}
			legs := h.srv.HandOffLegs()
			if len(legs) != 1 {
				t.Fatalf("%d sessions with a backend, want 1", len(legs))
			}
			if legs[0][0] != tc.wantClient || legs[0][1] != tc.wantBackend {
				t.Errorf("hand-off on the client leg %v, on the backend leg %v; want %v, %v",
					legs[0][0], legs[0][1], tc.wantClient, tc.wantBackend)
			}
		})
	}
}

// connectOverLoopback returns h.connect for a client that reaches the proxy
// over a loopback socket instead of the harness's pipe.
func connectOverLoopback(h *harness) func(testing.TB) *proxytest.Client {
	return func(t testing.TB) *proxytest.Client {
		t.Helper()
		ln := listenLoopback(t)
		go h.srv.Serve(ln)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		c, err := proxytest.Connect(ctx, func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", ln.Addr().String())
		}, "app", "secret", "shop")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
}

func listenLoopback(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln
}
