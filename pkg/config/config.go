package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the whole configuration file. Sections owned by other packages
// (identities, audit) are kept as YAML nodes and decoded by those packages,
// so their keys are documented next to the code that reads them.
type Config struct {
	Listen        string `yaml:"listen"`
	AdminListen   string `yaml:"admin_listen"`
	Node          string `yaml:"node"`
	MaxPacketSize int    `yaml:"max_packet_size"`
	// MaxStatementSize bounds the SQL text of a query or a PREPARE, which
	// sqlwarden parses (at about ten times its size in memory); values
	// larger than that go as parameters (COM_STMT_SEND_LONG_DATA).
	MaxStatementSize int           `yaml:"max_statement_size"`
	DrainTimeout     time.Duration `yaml:"drain_timeout"`
	// HandshakeTimeout bounds a client's login, from connect until it has
	// authenticated.
	HandshakeTimeout time.Duration `yaml:"handshake_timeout"`
	// MaxUnauthenticatedConnections and MaxUnauthenticatedPerSource bound
	// the connections that have not authenticated yet, overall and per
	// client address; past them a connection gets ERR 1040 at once.
	MaxUnauthenticatedConnections int        `yaml:"max_unauthenticated_connections"`
	MaxUnauthenticatedPerSource   int        `yaml:"max_unauthenticated_per_source"`
	LogLevel                      string     `yaml:"log_level"`
	TLS                           TLS        `yaml:"tls"`
	Redirect                      Redirect   `yaml:"redirect"`
	Kubernetes                    Kubernetes `yaml:"kubernetes"`
	Backends                      []Backend  `yaml:"backends"`
	Identities                    yaml.Node  `yaml:"identities"`
	Audit                         yaml.Node  `yaml:"audit"`
	Masking                       yaml.Node  `yaml:"masking"` // engine settings; the rules live in the policy file
	Policy                        Policy     `yaml:"policy"`
	Admin                         Admin      `yaml:"admin"`
	ServerVersion                 string     `yaml:"server_version"`
	// ClientAuthPlugin is the authentication plugin the proxy's greeting
	// offers first: mysql_native_password (default) or caching_sha2_password
	// (MySQL 8 clients then skip an auth switch). Clients may answer with
	// either.
	ClientAuthPlugin string `yaml:"client_auth_plugin"`
	// AllowLocalInfile lets LOAD DATA LOCAL INFILE through when policy
	// allows the statement; the file always comes from the client, never
	// from the proxy's host. Default false: refused with a clear error.
	AllowLocalInfile bool `yaml:"allow_local_infile"`
	// HandOff: after a session has sent a reply to its client or a command
	// to its backend, its thread gives up the rest of its time slice
	// (sched_yield), so that the peer woken by those bytes runs at once
	// instead of queueing behind the other sessions the thread serves next.
	// Only toward a peer on this machine (a redirected workload, loopback, a
	// Unix socket, the host's own address): toward another host it would
	// only give the CPU to unrelated work. Default true; the benchmarks
	// (docs/bench.md) measure it.
	HandOff *bool `yaml:"hand_off"`
}

// TLS is the client-facing TLS configuration.
type TLS struct {
	Enabled    *bool  `yaml:"enabled"`     // default true: offer TLS (self-signed when no cert is given)
	CertFile   string `yaml:"cert_file"`   // PEM certificate chain
	KeyFile    string `yaml:"key_file"`    // PEM private key
	RequireTLS bool   `yaml:"require_tls"` // refuse clients that don't upgrade
}

// Redirect configures the eBPF transparent redirect.
type Redirect struct {
	Enabled     bool     `yaml:"enabled"`
	Ports       []uint16 `yaml:"ports"`
	FailMode    string   `yaml:"fail_mode"`
	NodeAddress string   `yaml:"node_address"`
	CgroupRoot  string   `yaml:"cgroup_root"`
	PinDir      string   `yaml:"pin_dir"`
}

// Kubernetes configures per-pod enrollment: the daemon watches the pods of
// its node and enrolls the pod cgroup of those annotated
// sqlwarden.io/intercept: "true" (see pkg/k8s).
type Kubernetes struct {
	Enabled      bool   `yaml:"enabled"`
	Kubeconfig   string `yaml:"kubeconfig"`    // empty: in-cluster service account
	NodeName     string `yaml:"node_name"`     // empty: $NODE_NAME, then the host name
	CgroupDriver string `yaml:"cgroup_driver"` // the kubelet's: systemd | cgroupfs | "" (whichever layout exists)
	CgroupPrefix string `yaml:"cgroup_prefix"` // the kubelet's own cgroup when it runs nested (kind); default "/"
}

// Backend is a database the proxy logs into with credentials only it holds.
type Backend struct {
	Name    string `yaml:"name"`
	Address string `yaml:"address"` // empty: the connection's original destination
	// Destinations are where a backend without an address may be (CIDR
	// prefixes or addresses): its credential goes to a redirected
	// connection's original destination only when one of them holds it,
	// so a workload cannot point the daemon's login at a server it runs.
	Destinations []string   `yaml:"destinations"`
	User         string     `yaml:"user"`
	Password     string     `yaml:"password"`
	PasswordFile string     `yaml:"password_file"`
	TLS          BackendTLS `yaml:"tls"`
	// ServerPublicKeyFile is the server's RSA public key (PEM), for a
	// caching_sha2_password or sha256_password full authentication
	// without TLS; without TLS or this key such a login is refused.
	ServerPublicKeyFile string `yaml:"server_public_key_file"`
	// ConnectTimeout bounds a login to this backend (connecting, greeting,
	// TLS, authentication); past it the client gets a clean ERR.
	ConnectTimeout time.Duration `yaml:"connect_timeout"`
}

// DestinationPrefixes parses Destinations: a CIDR prefix, or an address
// (a prefix of its full length).
func (b *Backend) DestinationPrefixes() ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, d := range b.Destinations {
		if p, err := netip.ParsePrefix(d); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(d)
		if err != nil {
			return nil, fmt.Errorf("destinations: %q is neither a CIDR prefix nor an address", d)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// DefaultConnectTimeout is a backend's connect_timeout when unset.
const DefaultConnectTimeout = 5 * time.Second

// BackendTLS configures TLS toward a backend.
type BackendTLS struct {
	Enabled    bool   `yaml:"enabled"`
	CAFile     string `yaml:"ca_file"`     // verify the server against this CA (system roots when empty)
	ServerName string `yaml:"server_name"` // expected name in the certificate
	SkipVerify bool   `yaml:"skip_verify"` // only when configured
}

// Policy configures guardrails and approvals.
type Policy struct {
	File      string    `yaml:"file"` // empty: the built-in default policy
	Approvals Approvals `yaml:"approvals"`
}

// Approvals configures human approval of held statements.
type Approvals struct {
	// Timeout is how long a request stays pending (both modes); default 5m.
	Timeout    time.Duration `yaml:"timeout"`
	WebhookURL string        `yaml:"webhook_url"`
	// Mode is hold (default: the client waits for the decision) or retry
	// (refused at once with the request id; the identical statement re-sent
	// once approved runs once). A rule's approval_mode overrides it.
	Mode string `yaml:"mode"`
	// RetryTTL is how long an approved retry-mode request may be used;
	// default 15m.
	RetryTTL time.Duration `yaml:"retry_ttl"`
	// Store is where requests and decisions live: memory (default, this
	// daemon only) or nats (a JetStream key-value bucket every node shares).
	Store string        `yaml:"store"`
	NATS  ApprovalsNATS `yaml:"nats"`
}

// ApprovalsNATS locates the shared approval bucket.
type ApprovalsNATS struct {
	URL       string  `yaml:"url"`
	Bucket    string  `yaml:"bucket"`     // default SQLWARDEN_APPROVALS
	CredsFile string  `yaml:"creds_file"` // NATS user credentials (JWT + nkey)
	TLS       NATSTLS `yaml:"tls"`
}

// NATSTLS is TLS toward NATS (the same keys as the audit sink's tls).
type NATSTLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`
	CertFile           string `yaml:"cert_file"`
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"`
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// DefaultApprovalsBucket is the JetStream key-value bucket of shared approvals.
const DefaultApprovalsBucket = "SQLWARDEN_APPROVALS"

// Admin configures the admin API's authentication.
type Admin struct {
	Token     string     `yaml:"token"`      // bearer token for /api/v1 (approvers)
	TokenFile string     `yaml:"token_file"` // or read it from a file
	OIDC      *AdminOIDC `yaml:"oidc"`       // or approvers' OIDC ID tokens
	// Pprof serves Go's /debug/pprof on the admin listener (off by default:
	// it exposes internals to whoever can reach admin_listen).
	Pprof bool `yaml:"pprof"`
	// PublicURL is how approvers reach the admin listener (the approver
	// page linked from approval webhooks), e.g. https://sqlwarden.example
	// behind a proxy. Default: http://admin_listen, with the host name in
	// place of an unspecified address (0.0.0.0, ::).
	PublicURL string `yaml:"public_url"`
}

// AdminOIDC lets approvers authenticate with their own OIDC ID tokens.
type AdminOIDC struct {
	Issuer    string   `yaml:"issuer"`
	ClientID  string   `yaml:"client_id"`  // the expected audience
	NameClaim string   `yaml:"name_claim"` // default email, then sub
	Approvers []string `yaml:"approvers"`  // allowed names (empty: any verified user in Groups)
	Groups    []string `yaml:"groups"`     // allowed groups
}

// Defaults.
const (
	DefaultListen       = "127.0.0.1:15306"
	DefaultAdminListen  = "127.0.0.1:9309"
	DefaultMaxPacket    = 1 << 30
	DefaultMaxStatement = 64 << 20
	DefaultPinDir       = "/sys/fs/bpf/sqlwarden"

	DefaultHandshakeTimeout            = 10 * time.Second
	DefaultMaxUnauthenticated          = 512
	DefaultMaxUnauthenticatedPerSource = 64
)

// Load reads and validates a configuration file.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	return Parse(data)
}

// Parse decodes and validates configuration bytes; unknown keys are errors,
// so a typo never silently turns a guardrail off.
func Parse(data []byte) (*Config, error) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("parse config: %w", err)
	}
	c.setDefaults()
	if err := c.validate(); err != nil {
		return nil, err
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.AdminListen == "" {
		c.AdminListen = DefaultAdminListen
	}
	if c.MaxPacketSize == 0 {
		c.MaxPacketSize = DefaultMaxPacket
	}
	if c.MaxStatementSize == 0 {
		c.MaxStatementSize = DefaultMaxStatement
	}
	if c.DrainTimeout == 0 {
		c.DrainTimeout = 10 * time.Second
	}
	if c.HandshakeTimeout == 0 {
		c.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if c.MaxUnauthenticatedConnections == 0 {
		c.MaxUnauthenticatedConnections = DefaultMaxUnauthenticated
	}
	if c.MaxUnauthenticatedPerSource == 0 {
		c.MaxUnauthenticatedPerSource = DefaultMaxUnauthenticatedPerSource
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	if len(c.Redirect.Ports) == 0 {
		c.Redirect.Ports = []uint16{3306}
	}
	if c.Redirect.FailMode == "" {
		c.Redirect.FailMode = "closed"
	}
	if c.Redirect.CgroupRoot == "" {
		c.Redirect.CgroupRoot = "auto"
	}
	if c.Redirect.PinDir == "" {
		c.Redirect.PinDir = DefaultPinDir
	}
	ap := &c.Policy.Approvals
	if ap.Timeout == 0 {
		ap.Timeout = 5 * time.Minute
	}
	if ap.Mode == "" {
		ap.Mode = "hold"
	}
	if ap.RetryTTL == 0 {
		ap.RetryTTL = 15 * time.Minute
	}
	if ap.Store == "" {
		ap.Store = "memory"
	}
	if ap.NATS.Bucket == "" {
		ap.NATS.Bucket = DefaultApprovalsBucket
	}
	if c.ServerVersion == "" {
		c.ServerVersion = "10.11.0-MariaDB-sqlwarden"
	}
	for i := range c.Backends {
		if c.Backends[i].ConnectTimeout == 0 {
			c.Backends[i].ConnectTimeout = DefaultConnectTimeout
		}
	}
}

func (c *Config) validate() error {
	if _, err := netip.ParseAddrPort(c.Listen); err != nil {
		return fmt.Errorf("config listen %q: %w", c.Listen, err)
	}
	if c.HandshakeTimeout < 0 || c.MaxUnauthenticatedConnections < 0 || c.MaxUnauthenticatedPerSource < 0 {
		return errors.New("config handshake_timeout, max_unauthenticated_connections, max_unauthenticated_per_source: must be positive")
	}
	if c.Redirect.FailMode != "closed" && c.Redirect.FailMode != "open" {
		return fmt.Errorf("config redirect.fail_mode %q: want closed or open", c.Redirect.FailMode)
	}
	if c.Redirect.NodeAddress != "" {
		if _, err := netip.ParseAddr(c.Redirect.NodeAddress); err != nil {
			return fmt.Errorf("config redirect.node_address: %w", err)
		}
	}
	ap := c.Policy.Approvals
	if ap.Mode != "hold" && ap.Mode != "retry" {
		return fmt.Errorf("config policy.approvals.mode %q: want hold or retry", ap.Mode)
	}
	if ap.Timeout < 0 || ap.RetryTTL < 0 {
		return errors.New("config policy.approvals: timeout and retry_ttl must be positive")
	}
	switch ap.Store {
	case "memory":
	case "nats":
		if ap.NATS.URL == "" {
			return errors.New("config policy.approvals.nats.url: required with store nats")
		}
	default:
		return fmt.Errorf("config policy.approvals.store %q: want memory or nats", ap.Store)
	}
	if c.Kubernetes.Enabled && !c.Redirect.Enabled {
		return errors.New("config kubernetes.enabled: per-pod enrollment needs redirect.enabled")
	}
	switch c.Kubernetes.CgroupDriver {
	case "", "systemd", "cgroupfs":
	default:
		return fmt.Errorf("config kubernetes.cgroup_driver %q: want systemd, cgroupfs or empty", c.Kubernetes.CgroupDriver)
	}
	if len(c.Backends) == 0 {
		return errors.New("config backends: at least one backend is required")
	}
	seen := map[string]bool{}
	for i, b := range c.Backends {
		if b.Name == "" {
			return fmt.Errorf("config backends[%d]: name is required", i)
		}
		if seen[b.Name] {
			return fmt.Errorf("config backends[%d]: duplicate name %q", i, b.Name)
		}
		seen[b.Name] = true
		if b.User == "" {
			return fmt.Errorf("config backends[%d] %s: user is required", i, b.Name)
		}
		if b.ConnectTimeout < 0 {
			return fmt.Errorf("config backends[%d] %s: connect_timeout %s is negative", i, b.Name, b.ConnectTimeout)
		}
		if b.Address == "" && !c.Redirect.Enabled {
			return fmt.Errorf("config backends[%d] %s: address is required when redirect is disabled", i, b.Name)
		}
		if b.Address == "" && len(b.Destinations) == 0 {
			return fmt.Errorf("config backends[%d] %s: without an address (the connection's original destination), destinations must say where the backend's credential may go", i, b.Name)
		}
		if b.Address != "" && len(b.Destinations) > 0 {
			return fmt.Errorf("config backends[%d] %s: destinations apply only to a backend without an address", i, b.Name)
		}
		if _, err := b.DestinationPrefixes(); err != nil {
			return fmt.Errorf("config backends[%d] %s: %w", i, b.Name, err)
		}
	}
	switch c.ClientAuthPlugin {
	case "", "mysql_native_password", "caching_sha2_password":
	default:
		return fmt.Errorf("config client_auth_plugin %q: want mysql_native_password or caching_sha2_password", c.ClientAuthPlugin)
	}
	if u := c.Admin.PublicURL; u != "" {
		pu, err := url.Parse(u)
		if err != nil || (pu.Scheme != "http" && pu.Scheme != "https") || pu.Host == "" {
			return fmt.Errorf("config admin.public_url %q: want an absolute http or https URL", u)
		}
	}
	if c.TLS.RequireTLS && c.TLS.Enabled != nil && !*c.TLS.Enabled {
		return errors.New("config tls: require_tls with TLS disabled")
	}
	return nil
}

// ApproverPageURL is the approver page's address for links (webhooks):
// admin.public_url's /approvals, else the admin listener's, naming this
// host when it listens on every address.
func (c *Config) ApproverPageURL() string {
	if c.Admin.PublicURL != "" {
		return strings.TrimRight(c.Admin.PublicURL, "/") + "/approvals"
	}
	addr := c.AdminListen
	if ap, err := netip.ParseAddrPort(addr); err == nil && ap.Addr().IsUnspecified() {
		if h, err := os.Hostname(); err == nil && h != "" {
			addr = net.JoinHostPort(h, strconv.Itoa(int(ap.Port())))
		}
	}
	return "http://" + addr + "/approvals"
}

// Backend returns the backend named name.
func (c *Config) Backend(name string) (*Backend, bool) {
	for i := range c.Backends {
		if c.Backends[i].Name == name {
			return &c.Backends[i], true
		}
	}
	return nil, false
}

// TLSEnabled reports whether client TLS is offered.
func (c *Config) TLSEnabled() bool { return c.TLS.Enabled == nil || *c.TLS.Enabled }

// HandOffEnabled reports whether sessions hand their CPU to the peer after
// each flush (hand_off, default true).
func (c *Config) HandOffEnabled() bool { return c.HandOff == nil || *c.HandOff }
