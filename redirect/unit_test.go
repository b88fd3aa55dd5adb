package redirect

import (
	"github.com/sqlwarden/sqlwarden/pkg/host"
	"net/netip"
	"testing"
)

func TestEncodeEnrollment(t *testing.T) {
	tests := []struct {
		name    string
		ports   []uint16
		want    []uint16
		wantErr bool
	}{
		{"one", []uint16{3306}, []uint16{3306}, false},
		{"dedup", []uint16{3306, 3307, 3306}, []uint16{3306, 3307}, false},
		{"empty", nil, nil, true},
		{"zero", []uint16{0}, nil, true},
		{"too many", []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17}, nil, true},
		{"max", []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, []uint16{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := encodeEnrollment(tt.ports)
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v", err)
			}
			if err == nil && fmtPorts(decodePorts(e)) != fmtPorts(tt.want) {
				t.Errorf("ports = %v, want %v", decodePorts(e), tt.want)
			}
		})
	}
}

func fmtPorts(p []uint16) string {
	s := ""
	for _, x := range p {
		s += string(rune(x)) + ","
	}
	return s
}

func TestConfigFor(t *testing.T) {
	c, err := configFor(netip.MustParseAddrPort("127.0.0.1:15306"), netip.MustParseAddr("169.254.77.1"))
	if err != nil {
		t.Fatal(err)
	}
	if ip4(c.ProxyIp4) != netip.MustParseAddr("127.0.0.1") || ip6(c.ProxyIp6) != netip.IPv6Loopback() ||
		c.ProxyPort != 15306 || ip4(c.NodeIp4) != netip.MustParseAddr("169.254.77.1") || c.Flags&configHaveNodeIP6 != 0 {
		t.Errorf("config = %+v", c)
	}
	// 127.0.0.1 in network byte order: first byte 127 in memory.
	if b := netip.MustParseAddr("127.0.0.1").As4(); byte(c.ProxyIp4) != b[0] {
		t.Errorf("proxy_ip4 %#x is not network byte order", c.ProxyIp4)
	}
	c, err = configFor(netip.MustParseAddrPort("[::1]:15306"), netip.MustParseAddr("fe80::77"))
	if err != nil {
		t.Fatal(err)
	}
	if ip4(c.ProxyIp4) != netip.MustParseAddr("127.0.0.1") || ip6(c.NodeIp6) != netip.MustParseAddr("fe80::77") || c.Flags&configHaveNodeIP6 == 0 {
		t.Errorf("v6 config = %+v", c)
	}
	if _, err := configFor(netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddr("127.0.0.2")); err == nil {
		t.Error("loopback node address accepted")
	}
}

func TestTupleKeyMatchesMappedAndPlain(t *testing.T) {
	a := tupleKey(netip.MustParseAddrPort("10.1.2.3:40000"), netip.MustParseAddrPort("127.0.0.1:15306"))
	b := tupleKey(netip.MustParseAddrPort("[::ffff:10.1.2.3]:40000"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:15306"))
	if a != b {
		t.Errorf("plain %+v != mapped %+v", a, b)
	}
}

func TestOriginFrom(t *testing.T) {
	o := originFrom(bpfOrigin{DstIp: netip.MustParseAddr("10.0.0.5").As16(), DstPort: 3306, Family: 4, Pid: 7, Uid: 8, CgroupId: 9, NetnsCookie: 10})
	want := host.Origin{Destination: netip.MustParseAddrPort("10.0.0.5:3306"), PID: 7, UID: 8, CgroupID: 9, NetnsCookie: 10}
	if o != want {
		t.Errorf("origin = %+v, want %+v", o, want)
	}
	o = originFrom(bpfOrigin{DstIp: netip.IPv6Loopback().As16(), DstPort: 3306, Family: 6})
	if o.Destination != netip.MustParseAddrPort("[::1]:3306") {
		t.Errorf("v6 destination = %v", o.Destination)
	}
}

func TestEnsurePinDirRefusesNonBPFFS(t *testing.T) {
	dir := t.TempDir()
	if err := ensurePinDir(dir+"/sqlwarden", nil); err == nil {
		t.Fatal("pin dir on a non-bpf filesystem accepted")
	}
}
