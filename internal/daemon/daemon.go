package daemon

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/sqlwarden/sqlwarden/pkg/approval"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
	"github.com/sqlwarden/sqlwarden/pkg/audit/sink"
	"github.com/sqlwarden/sqlwarden/pkg/config"
	"github.com/sqlwarden/sqlwarden/pkg/identity"
	"github.com/sqlwarden/sqlwarden/pkg/metrics"
	"github.com/sqlwarden/sqlwarden/pkg/policy"
	"github.com/sqlwarden/sqlwarden/pkg/proxy"
	"github.com/sqlwarden/sqlwarden/redirect"
)

// Options are what the daemon takes besides its configuration.
type Options struct {
	// Log receives every component's log, tagged with its name.
	Log *slog.Logger
	// Version is the build's version, exported in sqlwarden_build_info.
	Version string
}

// Daemon holds the running parts, built in start-up order by New and torn
// down in reverse by Close.
type Daemon struct {
	cfg     *config.Config
	log     *slog.Logger
	version string
	journal *audit.Journal
	policy  *policy.Engine
	// metrics exists before the journal opens, so every fsync is observed
	// and every later part registers its collectors on it.
	metrics  *metrics.Metrics
	resolver *identity.Resolver // nil when no oidc/static identities are configured
	proxy    *proxy.Server
	admin    *http.Server
	closers  []func() error
	// beforeDrain runs when shutdown starts, before sessions drain (e.g.
	// ending pending approvals so their clients get an answer).
	beforeDrain []func()

	extraListen   []string
	listeners     []net.Listener
	served        bool
	redirector    *redirect.Redirector
	backends      map[string]*proxy.Backend
	auditDir      string
	adminHandlers []adminHandler
	adminAuth     approval.Authenticator // who may use the admin API and pprof
	// readyChecks are asked by /readyz after the journal (e.g. the shared
	// approval store).
	readyChecks []func() error
	ready       chan struct{}
}

// decodeNode decodes a config section kept as a YAML node, strictly.
func decodeNode(n *yaml.Node, into any) error {
	if n == nil || n.Kind == 0 {
		return nil
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	dec := yaml.NewDecoder(strings.NewReader(string(b)))
	dec.KnownFields(true)
	return dec.Decode(into)
}

// New builds the daemon from cfg in start-up order: metrics, the journal
// (nothing is served without one), policy, identities, backends, TLS, then
// the optional parts (redirect, pods, masking, approvals), the proxy and its
// listeners. ctx bounds the background work started here (policy file
// watch, pod watcher, identity discovery). On error, what was built is
// closed again.
func New(ctx context.Context, cfg *config.Config, o Options) (_ *Daemon, err error) {
	log := o.Log
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{cfg: cfg, log: log, version: o.Version, ready: make(chan struct{})}
	defer func() {
		if err != nil {
			d.Close()
		}
	}()
	d.metrics = metrics.New(metrics.Options{Version: d.version})

	// Audit first: nothing is served without a journal.
	var acfg audit.Config
	if err := decodeNode(&cfg.Audit, &acfg); err != nil {
		return nil, fmt.Errorf("config audit: %w", err)
	}
	if acfg.Dir == "" {
		acfg.Dir = audit.DefaultDir
	}
	if acfg.Node == "" {
		acfg.Node = cfg.Node
	}
	if acfg.RingDir == "" {
		acfg.RingDir = audit.RingAuto // /dev/shm/sqlwarden when /dev/shm is a tmpfs
	}
	acfg.Log = log.With("component", "audit")
	acfg.SyncObserver = d.metrics.ObserveSync
	acfg.OpenSink = sink.Open
	j, err := audit.Open(acfg)
	if err != nil {
		return nil, err
	}
	d.journal = j
	d.closers = append(d.closers, j.Close)

	// Policy (built-in default when no file is configured).
	pe, err := policy.New(policy.Options{Path: cfg.Policy.File, Log: log.With("component", "policy")})
	if err != nil {
		return nil, err
	}
	d.policy = pe
	go pe.Watch(ctx)

	// Identities.
	var icfg identity.Config
	if err := decodeNode(&cfg.Identities, &icfg); err != nil {
		return nil, fmt.Errorf("config identities: %w", err)
	}
	if icfg.OIDC != nil || len(icfg.Static) > 0 || icfg.AllowPasswordToken {
		d.resolver, err = identity.NewResolver(ctx, icfg, log.With("component", "identity"))
		if err != nil {
			return nil, err
		}
	}
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	auth, err := identity.NewAuthenticator(d.resolver, icfg, rsaKey, cfg.Backends[0].Name)
	if err != nil {
		return nil, err
	}

	backends, err := buildBackends(cfg)
	if err != nil {
		return nil, err
	}
	d.backends = backends
	d.auditDir = acfg.Dir
	clientTLS, err := clientTLSConfig(cfg)
	if err != nil {
		return nil, err
	}

	opts := proxy.Options{
		Log: log, Audit: j, Auth: authAdapter{auth}, Policy: newPolicyDeps(pe), Backends: backends,
		ClientTLS: clientTLS, RequireTLS: cfg.TLS.RequireTLS,
		MaxPacket: cfg.MaxPacketSize, MaxStatement: cfg.MaxStatementSize, ServerVersion: cfg.ServerVersion, Node: cfg.Node, Results: acfg.Results,
		ClientAuthPlugin: cfg.ClientAuthPlugin, AllowLocalInfile: cfg.AllowLocalInfile, HandOff: cfg.HandOffEnabled(),
		HandshakeTimeout: cfg.HandshakeTimeout, MaxPending: cfg.MaxUnauthenticatedConnections,
		MaxPendingPerSource: cfg.MaxUnauthenticatedPerSource,
	}
	if err := d.setupOptional(ctx, &opts); err != nil {
		return nil, err
	}
	srv, err := proxy.New(opts)
	if err != nil {
		return nil, err
	}
	d.proxy = srv

	// Listeners: the listen address, plus what the redirect sends to.
	addrs := []string{cfg.Listen}
	addrs = append(addrs, d.extraListen...)
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a)
		if err != nil {
			return nil, fmt.Errorf("listen %s: %w", a, err)
		}
		d.listeners = append(d.listeners, ln)
		log.Info("proxy listening", "addr", ln.Addr().String())
	}
	return d, nil
}

// Run serves until ctx ends (SIGHUP reloads the policy meanwhile), then
// drains sessions for the configured drain timeout. Call Close after it.
func (d *Daemon) Run(ctx context.Context) error {
	log, srv := d.log, d.proxy
	d.served = true
	var wg sync.WaitGroup
	for _, ln := range d.listeners {
		wg.Add(1)
		go func(ln net.Listener) {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil {
				log.Error("serve", "addr", ln.Addr().String(), "err", err)
			}
		}(ln)
	}

	if err := d.startAdmin(); err != nil {
		srv.Shutdown(context.Background())
		return err
	}
	close(d.ready)

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	for {
		select {
		case <-hup:
			if err := d.policy.Reload(); err != nil {
				log.Warn("policy reload on SIGHUP kept the old policy", "err", err)
			} else {
				log.Info("policy reloaded on SIGHUP")
			}
			continue
		case <-ctx.Done():
		}
		break
	}
	log.Info("shutting down", "drain_timeout", d.cfg.DrainTimeout, "sessions", srv.Active())
	for _, f := range d.beforeDrain {
		f()
	}
	dctx, cancel := context.WithTimeout(context.Background(), d.cfg.DrainTimeout)
	defer cancel()
	if err := srv.Shutdown(dctx); err != nil {
		log.Warn("drain deadline reached; closed remaining sessions", "err", err)
	}
	wg.Wait()
	if d.admin != nil {
		_ = d.admin.Shutdown(context.Background())
	}
	return nil
}

// Close releases what New built, in reverse order: listeners never served,
// the pod watcher, the approval store, the masking schema pool, the
// redirect (its pins stay) and last the journal.
func (d *Daemon) Close() {
	if !d.served {
		for _, ln := range d.listeners {
			ln.Close()
		}
	}
	for i := len(d.closers) - 1; i >= 0; i-- {
		if cerr := d.closers[i](); cerr != nil {
			d.log.Warn("shutdown step", "err", cerr)
		}
	}
	d.closers = nil
}

func buildBackends(cfg *config.Config) (map[string]*proxy.Backend, error) {
	out := map[string]*proxy.Backend{}
	for _, b := range cfg.Backends {
		src := identity.NewCredentialSource(b.User, b.Password, b.PasswordFile)
		var err error
		if _, err = src.Get(); err != nil {
			return nil, fmt.Errorf("backend %s credential: %w", b.Name, err)
		}
		be := &proxy.Backend{Name: b.Name, Address: b.Address, ConnectTimeout: b.ConnectTimeout, Credential: func() (proxy.Credential, error) {
			c, err := src.Get()
			return proxy.Credential{User: c.User, Password: c.Password}, err
		}}
		if be.Destinations, err = b.DestinationPrefixes(); err != nil {
			return nil, fmt.Errorf("backend %s: %w", b.Name, err)
		}
		if b.ServerPublicKeyFile != "" {
			if be.ServerPublicKey, err = readPublicKey(b.ServerPublicKeyFile); err != nil {
				return nil, fmt.Errorf("backend %s server_public_key_file: %w", b.Name, err)
			}
		}
		if b.TLS.Enabled {
			tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: b.TLS.ServerName, InsecureSkipVerify: b.TLS.SkipVerify}
			if b.TLS.CAFile != "" {
				pem, err := os.ReadFile(b.TLS.CAFile)
				if err != nil {
					return nil, fmt.Errorf("backend %s tls ca_file: %w", b.Name, err)
				}
				pool := x509.NewCertPool()
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("backend %s tls ca_file: no certificates", b.Name)
				}
				tc.RootCAs = pool
			}
			if tc.ServerName == "" && b.Address != "" {
				if host, _, err := net.SplitHostPort(b.Address); err == nil {
					tc.ServerName = host
				}
			}
			be.TLS = tc
		}
		out[b.Name] = be
	}
	return out, nil
}

// readPublicKey reads an RSA public key (PEM: PUBLIC KEY or RSA PUBLIC KEY).
func readPublicKey(path string) (*rsa.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, errors.New("no PEM block")
	}
	if block.Type == "RSA PUBLIC KEY" {
		return x509.ParsePKCS1PublicKey(block.Bytes)
	}
	key, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, err
	}
	pub, ok := key.(*rsa.PublicKey)
	if !ok {
		return nil, errors.New("not an RSA key")
	}
	return pub, nil
}

// clientTLSConfig loads the configured certificate or generates a
// self-signed one, so TLS is always on offer unless disabled.
func clientTLSConfig(cfg *config.Config) (*tls.Config, error) {
	if !cfg.TLSEnabled() {
		return nil, nil
	}
	var cert tls.Certificate
	var err error
	if cfg.TLS.CertFile != "" {
		cert, err = tls.LoadX509KeyPair(cfg.TLS.CertFile, cfg.TLS.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("load tls certificate: %w", err)
		}
	} else {
		cert, err = selfSigned(cfg.Node)
		if err != nil {
			return nil, err
		}
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}, nil
}

func selfSigned(host string) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "sqlwarden " + host},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost", host},
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1"), net.ParseIP("::1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("generate self-signed certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}

func (d *Daemon) startAdmin() error {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if err := d.journal.Healthy(); err != nil {
			http.Error(w, "audit journal: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		for _, check := range d.readyChecks {
			if err := check(); err != nil {
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
		}
		select {
		case <-d.ready:
			fmt.Fprintln(w, "ready")
		default:
			http.Error(w, "starting", http.StatusServiceUnavailable)
		}
	})
	if d.cfg.Admin.Pprof {
		// Behind the admin credential: a profile or a trace costs the
		// node CPU, and a heap dump holds whatever the daemon holds.
		mux.Handle("/debug/pprof/", d.adminOnly(http.HandlerFunc(pprof.Index)))
		mux.Handle("/debug/pprof/profile", d.adminOnly(http.HandlerFunc(pprof.Profile)))
		mux.Handle("/debug/pprof/symbol", d.adminOnly(http.HandlerFunc(pprof.Symbol)))
		mux.Handle("/debug/pprof/trace", d.adminOnly(http.HandlerFunc(pprof.Trace)))
	}
	for _, h := range d.adminHandlers {
		mux.Handle(h.pattern, h.handler)
	}
	ln, err := net.Listen("tcp", d.cfg.AdminListen)
	if err != nil {
		return fmt.Errorf("listen admin %s: %w", d.cfg.AdminListen, err)
	}
	d.admin = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	d.log.Info("admin listening", "addr", ln.Addr().String())
	go func() {
		if err := d.admin.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Error("admin server", "err", err)
		}
	}()
	return nil
}

// adminOnly serves h to requests the admin credential (admin.token,
// admin.oidc) authenticates; with none configured, to nobody.
func (d *Daemon) adminOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if d.adminAuth == nil {
			http.Error(w, "no admin credential is configured (admin.token, admin.oidc)", http.StatusForbidden)
			return
		}
		if _, err := d.adminAuth.Authenticate(r); err != nil {
			http.Error(w, "unauthorized: "+err.Error(), http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}
