package config

import (
	"fmt"
	"net"
	"os"
	"strings"
	"testing"
	"time"
)

const minimal = `
backends:
  - name: default
    address: 127.0.0.1:3306
    user: warden
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.Listen != DefaultListen || c.AdminListen != DefaultAdminListen || c.MaxPacketSize != DefaultMaxPacket ||
		c.DrainTimeout != 10*time.Second || c.Redirect.FailMode != "closed" || c.Redirect.PinDir != DefaultPinDir ||
		len(c.Redirect.Ports) != 1 || c.Redirect.Ports[0] != 3306 || !c.TLSEnabled() || c.Policy.Approvals.Timeout != 5*time.Minute {
		t.Fatalf("defaults: %+v", c)
	}
	// Without a policy.approvals section nothing outside the node is needed:
	// approvals in memory, held (no NATS, no retry TTL in play).
	if ap := c.Policy.Approvals; ap.Store != "memory" || ap.Mode != "hold" || ap.NATS.URL != "" || ap.RetryTTL != 15*time.Minute {
		t.Fatalf("approvals defaults: %+v", ap)
	}
	if b, ok := c.Backend("default"); !ok || b.User != "warden" || b.ConnectTimeout != DefaultConnectTimeout {
		t.Fatalf("Backend(default) = %+v %v", b, ok)
	}
	c, err = Parse([]byte(minimal + "    connect_timeout: 1500ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := c.Backend("default"); b.ConnectTimeout != 1500*time.Millisecond {
		t.Fatalf("connect_timeout = %s", b.ConnectTimeout)
	}

	// The CPU hand-off is on unless turned off.
	if !c.HandOffEnabled() {
		t.Fatal("hand_off is off by default")
	}
	c, err = Parse([]byte("hand_off: false\n" + minimal))
	if err != nil {
		t.Fatal(err)
	}
	if c.HandOffEnabled() {
		t.Fatal("hand_off: false left the hand-off on")
	}
}

func TestInvalid(t *testing.T) {
	for name, tc := range map[string]struct{ yaml, want string }{
		"unknown key":             {minimal + "listne: 1.2.3.4:5\n", "field listne not found"},
		"relative public_url":     {minimal + "admin:\n  public_url: sqlwarden.example\n", "admin.public_url"},
		"bad listen":              {minimal + "listen: nowhere\n", "config listen"},
		"bad fail mode":           {minimal + "redirect:\n  fail_mode: sometimes\n", "fail_mode"},
		"bad node address":        {minimal + "redirect:\n  node_address: 999.1.1.1\n", "node_address"},
		"no backends":             {"listen: 127.0.0.1:1\n", "at least one backend"},
		"unnamed backend":         {"backends:\n  - address: a:1\n    user: u\n", "name is required"},
		"duplicate backend":       {minimal + "  - name: default\n    address: b:1\n    user: u\n", "duplicate name"},
		"no user":                 {"backends:\n  - name: x\n    address: a:1\n", "user is required"},
		"no address no bpf":       {"backends:\n  - name: x\n    user: u\n", "address is required"},
		"negative timeout":        {minimal + "    connect_timeout: -1s\n", "connect_timeout"},
		"require tls w/o it":      {minimal + "tls:\n  enabled: false\n  require_tls: true\n", "require_tls"},
		"no destinations":         {"redirect:\n  enabled: true\nbackends:\n  - name: x\n    user: u\n", "destinations must say where"},
		"bad destination":         {"redirect:\n  enabled: true\nbackends:\n  - name: x\n    user: u\n    destinations: [db.internal]\n", "neither a CIDR prefix nor an address"},
		"destinations w/ address": {minimal + "    destinations: [10.0.0.0/8]\n", "only to a backend without an address"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
	// A backend without an address is fine when the redirect supplies the
	// destination and destinations bound it.
	c, err := Parse([]byte("redirect:\n  enabled: true\nbackends:\n  - name: x\n    user: u\n    destinations: [10.0.0.0/8, 192.168.1.7, \"fd00::/8\"]\n"))
	if err != nil {
		t.Fatal(err)
	}
	ps, err := c.Backends[0].DestinationPrefixes()
	if err != nil || fmt.Sprint(ps) != "[10.0.0.0/8 192.168.1.7/32 fd00::/8]" {
		t.Fatalf("destinations %v (%v)", ps, err)
	}
}

// TestApproverPageURL: the link approval webhooks carry reaches the page:
// public_url when set, else the admin listener, naming the host when it
// listens on every address (a DaemonSet's 0.0.0.0).
func TestApproverPageURL(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ extra, want string }{
		{"", "http://127.0.0.1:9309/approvals"},
		{"admin_listen: 10.1.2.3:9400\n", "http://10.1.2.3:9400/approvals"},
		{"admin_listen: 0.0.0.0:9309\n", "http://" + net.JoinHostPort(host, "9309") + "/approvals"},
		{"admin_listen: '[::]:9309'\n", "http://" + net.JoinHostPort(host, "9309") + "/approvals"},
		{"admin_listen: 0.0.0.0:9309\nadmin:\n  public_url: https://approvals.example/sqlwarden/\n", "https://approvals.example/sqlwarden/approvals"},
	} {
		c, err := Parse([]byte(minimal + tc.extra))
		if err != nil {
			t.Fatalf("%q: %v", tc.extra, err)
		}
		if got := c.ApproverPageURL(); got != tc.want {
			t.Errorf("%q: ApproverPageURL %s, want %s", tc.extra, got, tc.want)
		}
	}
}
