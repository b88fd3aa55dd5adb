package identity

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/host"
	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// maxCacheEntries bounds the verified-identity cache.
const maxCacheEntries = 4096

// PodMetadata gives the labels (and annotations, under their own keys) of a
// pod, for attribution. Back it with an informer cache: Resolve calls it on
// every token verification.
type PodMetadata interface {
	PodLabels(ctx context.Context, namespace, name string) (map[string]string, error)
}

// Resolver turns a connecting workload into a verified identity.
type Resolver struct {
	cfg      Config
	oidc     *OIDCConfig // with defaults; nil without OIDC
	verifier *verifier
	static   []staticBinding
	mount    string // cgroup v2 mount point, "" if none
	procRoot string
	log      *slog.Logger
	now      func() time.Time

	mu    sync.Mutex
	pods  PodMetadata
	cache map[cacheKey]*Identity

	verifications atomic.Uint64 // tokens verified (cache misses that reached the issuer's keys)
}

// cacheKey names one token file content seen by one process in one cgroup.
type cacheKey struct {
	pid    uint32
	start  uint64
	cgroup string
	token  [sha256.Size]byte
}

// NewResolver validates cfg and, when OIDC is configured, discovers the
// issuer (/.well-known/openid-configuration) and fetches its keys.
func NewResolver(ctx context.Context, cfg Config, log *slog.Logger) (*Resolver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validate identities: %w", err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{
		cfg:      cfg,
		procRoot: "/proc",
		log:      log,
		now:      time.Now,
		cache:    make(map[cacheKey]*Identity),
	}
	r.mount, _ = host.CgroupV2Mount() // none: cgroups are compared as given
	for _, s := range cfg.Static {
		r.static = append(r.static, staticBinding{StaticIdentity: s, cgroup: host.RelCgroup(r.mount, s.Cgroup)})
	}
	if cfg.OIDC != nil {
		o := cfg.OIDC.withDefaults()
		r.oidc = &o
		v, err := newVerifier(ctx, o, func() time.Time { return r.now() })
		if err != nil {
			return nil, err
		}
		r.verifier = v
		log.Info("oidc issuer discovered", "issuer", o.Issuer, "audience", o.Audience, "token_path", o.TokenPath)
	}
	return r, nil
}

// SetPodMetadata sets where pod labels come from; call it before serving.
func (r *Resolver) SetPodMetadata(p PodMetadata) {
	r.mu.Lock()
	r.pods = p
	r.mu.Unlock()
}

// Resolve returns the verified identity of the workload behind req, or a
// *DeniedError saying why there is none. A static binding of the workload's
// cgroup wins; otherwise its token is read inside its own root, verified and
// bound to its pod. The process is pinned by its start time throughout, so a
// pid that is reused meanwhile is refused as "process gone".
func (r *Resolver) Resolve(ctx context.Context, req Request) (*Identity, error) {
	var p *host.Proc
	var start uint64
	if req.PID != 0 {
		var err error
		if p, err = host.OpenProc(r.procRoot, req.PID); err != nil {
			return nil, deny(ReasonProcessGone, err)
		}
		defer p.Close()
		if start, err = p.StartTime(); err != nil {
			return nil, deny(ReasonProcessGone, err)
		}
		if req.StartTime != 0 && req.StartTime != start {
			return nil, deny(ReasonProcessGone, fmt.Errorf("pid %d reused: started at %d, connect saw %d", req.PID, start, req.StartTime))
		}
	}

	cg, podUID, err := r.workloadCgroup(p, req)
	if err != nil {
		return nil, err
	}

	id, err := r.resolve(ctx, req, p, start, cg, podUID)
	if err != nil {
		return nil, err
	}
	if p != nil {
		// Everything was read from the process we pinned, or it is gone.
		if now, err := p.StartTime(); err != nil || now != start {
			return nil, deny(ReasonProcessGone, err)
		}
	}
	// A copy: the cached identity is shared by every connection of the process.
	out := *id
	if id.Pod != nil {
		pod := *id.Pod
		out.Pod = &pod
	}
	return &out, nil
}

// workloadCgroup is the connection's cgroup v2 path and the pod it names.
func (r *Resolver) workloadCgroup(p *host.Proc, req Request) (cg, podUID string, err error) {
	if req.CgroupPath != "" {
		cg = host.RelCgroup(r.mount, req.CgroupPath)
	}
	if p == nil {
		return cg, PodUIDFromCgroup(cg), nil
	}
	pcg, ppod, err := procCgroup(p)
	if err != nil {
		return "", "", deny(ReasonProcessGone, err)
	}
	if pcg != "" {
		pcg = path.Clean(pcg)
	}
	if cg != "" && pcg != "" && cg != pcg {
		return "", "", deny(ReasonCgroupChanged, fmt.Errorf("connection in %s, process in %s", cg, pcg))
	}
	if cg == "" {
		cg = pcg
	}
	// The cgroup id the kernel gave the connection is the inode of its
	// cgroup directory: the process must still be there.
	if cg != "" && req.CgroupID != 0 && r.mount != "" {
		if id, err := host.CgroupID(path.Join(r.mount, cg)); err == nil && id != req.CgroupID {
			return "", "", deny(ReasonCgroupChanged, fmt.Errorf("connection in cgroup id %d, process in %s (id %d)", req.CgroupID, cg, id))
		}
	}
	if u := PodUIDFromCgroup(cg); u != "" {
		ppod = u
	}
	return cg, ppod, nil
}

func (r *Resolver) resolve(ctx context.Context, req Request, p *host.Proc, start uint64, cg, podUID string) (*Identity, error) {
	usePassword := req.PasswordToken != "" && r.cfg.AllowPasswordToken
	if usePassword && !req.TLS {
		return nil, deny(ReasonTokenNeedsTLS, nil)
	}
	if !usePassword && cg != "" {
		if b := matchStatic(r.static, cg); b != nil {
			return r.staticIdentity(b, podUID), nil
		}
	}
	if r.verifier == nil {
		return nil, deny(ReasonNoIdentity, fmt.Errorf("cgroup %q has no static binding and oidc is not configured", cg))
	}

	var raw []byte
	if usePassword {
		raw = []byte(strings.TrimSpace(req.PasswordToken))
	} else {
		if p == nil {
			return nil, deny(ReasonNoProcess, errors.New("no pid to read a token from"))
		}
		var err error
		if raw, err = readToken(p, r.oidc.TokenPath); err != nil {
			return nil, tokenDenial(err)
		}
		if len(raw) == 0 {
			return nil, deny(ReasonTokenMissing, fmt.Errorf("token file %s is empty", r.oidc.TokenPath))
		}
	}

	key := cacheKey{pid: req.PID, start: start, cgroup: cg, token: sha256.Sum256(raw)}
	if id := r.cached(key); id != nil {
		return id, nil
	}

	r.verifications.Add(1)
	v, err := r.verifier.verify(ctx, string(raw))
	if err != nil {
		return nil, err
	}
	id, kc, err := identityFromClaims(r.oidc, v.claims)
	if err != nil {
		return nil, deny(ReasonEmptyName, err)
	}
	id.Expiry = v.token.Expiry
	bind := kc.present
	if r.oidc.RequirePodBinding != nil {
		bind = *r.oidc.RequirePodBinding
	}
	if bind {
		switch {
		case kc.podUID == "":
			return nil, deny(ReasonNoPodClaim, errors.New("pod binding required but the token has no kubernetes.io pod uid"))
		case p == nil && cg == "":
			return nil, deny(ReasonPodBoundNoWorkload, errors.New("pod binding required but the connection names no process or cgroup"))
		case !strings.EqualFold(kc.podUID, podUID):
			return nil, deny(ReasonOtherPod, fmt.Errorf("token for pod uid %s, workload cgroup %q names pod %q", kc.podUID, cg, podUID))
		}
	}
	id.Backend = BackendFor(r.cfg.Rules, id)
	r.podLabels(ctx, id)
	r.store(key, id)
	return id, nil
}

func tokenDenial(err error) *DeniedError {
	var te *tokenError
	if errors.As(err, &te) {
		return deny(te.reason, err)
	}
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ESRCH) {
		return deny(ReasonProcessGone, err)
	}
	return deny(ReasonTokenUnreadable, err)
}

func (r *Resolver) staticIdentity(b *staticBinding, podUID string) *Identity {
	id := &Identity{Name: b.Name, Source: SourceStatic, Backend: b.Backend}
	if podUID != "" {
		id.Pod = &record.Pod{UID: podUID}
	}
	id.Backend = BackendFor(r.cfg.Rules, id)
	return id
}

func (r *Resolver) podLabels(ctx context.Context, id *Identity) {
	r.mu.Lock()
	pods := r.pods
	r.mu.Unlock()
	if pods == nil || id.Pod == nil || id.Pod.Name == "" {
		return
	}
	labels, err := pods.PodLabels(ctx, id.Pod.Namespace, id.Pod.Name)
	if err != nil {
		r.log.Warn("pod labels unavailable", "namespace", id.Pod.Namespace, "pod", id.Pod.Name, "err", err)
		return
	}
	id.Pod.Labels = labels
}

func (r *Resolver) cached(k cacheKey) *Identity {
	r.mu.Lock()
	defer r.mu.Unlock()
	id, ok := r.cache[k]
	if !ok {
		return nil
	}
	if !r.now().Before(id.Expiry) {
		delete(r.cache, k)
		return nil
	}
	return id
}

func (r *Resolver) store(k cacheKey, id *Identity) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.cache) >= maxCacheEntries {
		now := r.now()
		for k, v := range r.cache {
			if !now.Before(v.Expiry) {
				delete(r.cache, k)
			}
		}
		for k := range r.cache { // still full: drop an arbitrary half
			if len(r.cache) < maxCacheEntries/2 {
				break
			}
			delete(r.cache, k)
		}
	}
	r.cache[k] = id
}
