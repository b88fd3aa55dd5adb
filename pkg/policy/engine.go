package policy

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"

	"github.com/sqlwarden/sqlwarden/pkg/record"
	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// RuleDefault names the decision taken when no rule matched.
const RuleDefault = "default"

// Options configures an Engine.
type Options struct {
	// Path is the policy file; empty with no Data means the built-in DefaultPolicy.
	Path string
	// Data is a policy given inline, used when Path is empty.
	Data []byte
	// Log receives reload results; nil discards.
	Log *slog.Logger
	// Interval is how often Watch checks the file; default 1s.
	Interval time.Duration
	// ValidateMasking, when set, is asked to accept the masking section
	// before a policy is installed (pkg/masking can compile it here).
	ValidateMasking func([]MaskRule) error
}

// Engine holds the current compiled policy. It is safe for concurrent use:
// Decide reads an immutable snapshot, and a reload swaps it atomically.
type Engine struct {
	opts Options
	log  *slog.Logger
	env  *cel.Env

	cur atomic.Pointer[compiled]

	mu       sync.Mutex // serializes reloads
	badHash  [32]byte   // last invalid content, so the watcher logs it once
	readFail bool       // the last read failed, so the watcher logs it once
	onReload []func(version uint64)
}

type compiled struct {
	file    *File
	rules   []compiledRule
	hash    [32]byte
	version uint64
	source  string
}

type compiledRule struct {
	Rule
	prg cel.Program // nil: matches everything
}

// Load reads the policy file at path ("" for the built-in default policy)
// and returns an Engine holding it.
func Load(path string) (*Engine, error) {
	return New(Options{Path: path})
}

// New returns an Engine with the policy described by opts.
func New(opts Options) (*Engine, error) {
	if opts.Interval <= 0 {
		opts.Interval = time.Second
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	env, err := newCELEnv()
	if err != nil {
		return nil, err
	}
	e := &Engine{opts: opts, log: log, env: env}
	data, source, err := e.read()
	if err != nil {
		return nil, err
	}
	c, err := e.compile(data)
	if err != nil {
		return nil, fmt.Errorf("load policy %s: %w", source, err)
	}
	c.version, c.source = 1, source
	e.cur.Store(c)
	return e, nil
}

// Check reports whether data is a valid policy file.
func Check(data []byte) error {
	env, err := newCELEnv()
	if err != nil {
		return err
	}
	_, err = (&Engine{env: env}).compile(data)
	return err
}

func (e *Engine) read() ([]byte, string, error) {
	switch {
	case e.opts.Path != "":
		data, err := os.ReadFile(e.opts.Path)
		if err != nil {
			return nil, e.opts.Path, fmt.Errorf("read policy: %w", err)
		}
		return data, e.opts.Path, nil
	case e.opts.Data != nil:
		return e.opts.Data, "inline", nil
	default:
		return []byte(DefaultPolicy), "built-in", nil
	}
}

func (e *Engine) compile(data []byte) (*compiled, error) {
	f, err := parseFile(data)
	if err != nil {
		return nil, err
	}
	c := &compiled{file: f, hash: sha256.Sum256(data)}
	for _, r := range f.Rules {
		cr := compiledRule{Rule: r}
		if r.Match != "" {
			if cr.prg, err = compileMatch(e.env, r.Match); err != nil {
				return nil, fmt.Errorf("compile rule %q: %w", r.Name, err)
			}
		}
		c.rules = append(c.rules, cr)
	}
	if e.opts.ValidateMasking != nil {
		if err := e.opts.ValidateMasking(f.Masking); err != nil {
			return nil, fmt.Errorf("check masking: %w", err)
		}
	}
	return c, nil
}

// Decide returns the verdict of the first matching rule, or the default, on
// statement st sent by identity id (nil: none) on session sess.
//
// A rule whose match cannot be evaluated (a missing claim, a type error)
// fails closed: it matches and denies, with the evaluation error in the
// message, unless the rule says on_error: skip.
func (e *Engine) Decide(id *record.Identity, st *statement.Statement, sess statement.Session) statement.Verdict {
	if st != nil && len(st.CredentialTables) > 0 {
		return statement.Verdict{Rule: RuleCredentials, Action: record.ActionDeny, Message: credentialMessage}
	}
	if st != nil && st.SetsPassword {
		return statement.Verdict{Rule: RulePasswords, Action: record.ActionDeny, Message: passwordMessage}
	}
	c := e.cur.Load()
	var vars map[string]any
	name := ""
	if id != nil {
		name = id.Name
	}
	for i := range c.rules {
		r := &c.rules[i]
		if len(r.Identities) > 0 && !matchName(r.Identities, name) {
			continue
		}
		if r.prg == nil {
			return statement.Verdict{Rule: r.Name, Action: r.Action, Message: r.Message, ApprovalMode: r.ApprovalMode}
		}
		if vars == nil {
			vars = map[string]any{
				"identity":  identityVars(id),
				"statement": statementVars(st),
				"session":   &celSession{ID: sess.ID, DB: sess.DB, User: sess.User, ClientAddr: sess.ClientAddr, Command: sess.Command},
			}
		}
		matched, err := eval(r.prg, vars)
		if err != nil {
			if r.OnError == "skip" {
				continue
			}
			return statement.Verdict{Rule: r.Name, Action: record.ActionDeny, Message: "rule could not be evaluated: " + err.Error()}
		}
		if matched {
			return statement.Verdict{Rule: r.Name, Action: r.Action, Message: r.Message, ApprovalMode: r.ApprovalMode}
		}
	}
	return statement.Verdict{Rule: RuleDefault, Action: c.file.Default, Message: defaultMessage(c.file.Default)}
}

func defaultMessage(action record.Action) string {
	if action == record.ActionAllow {
		return ""
	}
	return "no rule allowed this statement"
}

var errNotBool = errors.New("match did not return a bool")

func eval(prg cel.Program, vars map[string]any) (bool, error) {
	out, _, err := prg.Eval(vars)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, errNotBool
	}
	return bool(b), nil
}

func matchName(patterns []string, name string) bool {
	for _, p := range patterns {
		if ok, _ := path.Match(p, name); ok {
			return true
		}
	}
	return false
}

// Masking returns the masking section of the current policy. The slice is
// shared and must not be modified; call it again after a reload (see
// OnReload and Version) to get the new rules.
func (e *Engine) Masking() []MaskRule { return e.cur.Load().file.Masking }

// Policy returns the current policy as parsed; it must not be modified.
func (e *Engine) Policy() *File { return e.cur.Load().file }

// Version counts successful loads, starting at 1; it changes on every reload
// that installs a new policy.
func (e *Engine) Version() uint64 { return e.cur.Load().version }

// OnReload registers fn to be called, with the new version, after each reload
// that installs a new policy. fn runs on the reloading goroutine.
func (e *Engine) OnReload(fn func(version uint64)) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.onReload = append(e.onReload, fn)
}

// Reload rereads the policy file and installs it if it is valid; if not,
// the old policy stays, and the error is logged and returned (a SIGHUP
// handler may ignore it). An unchanged file is not reinstalled.
func (e *Engine) Reload() error {
	_, err := e.reload(true)
	return err
}

// reload installs the file if it changed. Unless always, the same invalid
// content or read failure is logged only once.
func (e *Engine) reload(always bool) (bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	data, source, err := e.read()
	if err != nil {
		if always || !e.readFail {
			e.log.Warn("policy reload failed, keeping the current policy", "source", source, "err", err)
		}
		e.readFail = true
		return false, err
	}
	e.readFail = false
	hash := sha256.Sum256(data)
	old := e.cur.Load()
	if hash == old.hash {
		e.badHash = [32]byte{}
		return false, nil
	}
	if !always && hash == e.badHash {
		return false, nil
	}
	c, err := e.compile(data)
	if err != nil {
		e.badHash = hash
		err = fmt.Errorf("load policy %s: %w", source, err)
		e.log.Warn("policy reload failed, keeping the current policy", "source", source, "version", old.version, "err", err)
		return false, err
	}
	e.badHash = [32]byte{}
	c.version, c.source = old.version+1, source
	e.cur.Store(c)
	e.log.Info("policy reloaded", "source", source, "version", c.version, "rules", len(c.rules), "masking_rules", len(c.file.Masking), "limits", len(c.file.Limits))
	for _, fn := range e.onReload {
		fn(c.version)
	}
	return true, nil
}

// Watch starts a goroutine that rereads the policy file every Interval and
// installs it when its content changed, until ctx is done. It returns at
// once. Polling by content hash (not fsnotify) also catches Kubernetes
// ConfigMap symlink swaps and edits that keep the mtime.
func (e *Engine) Watch(ctx context.Context) {
	if e.opts.Path == "" {
		return
	}
	go func() {
		t := time.NewTicker(e.opts.Interval)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				e.reload(false) //nolint:errcheck // logged inside
			}
		}
	}()
}
