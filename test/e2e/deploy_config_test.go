package e2e

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gomysql "github.com/go-sql-driver/mysql"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.yaml.in/yaml/v3"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/test/harness"
)

// shippedConfig returns the config.yaml of the ConfigMap in manifest (a path
// under deploy/), made runnable on this machine: only what names the
// cluster is replaced — listen and admin addresses, the eBPF redirect and pod
// enrollment (they need privileges and a kubelet), the backend's address,
// the OIDC issuer (explicit clients instead), and the files the DaemonSet
// mounts (written here with test values). NATS URLs become natsURL and the
// creds_file (the Secret's placeholder) is dropped. Everything else —
// approvals, audit, policy — is the shipped text.
func shippedConfig(t *testing.T, manifest string, d *harness.Daemon, natsURL string) string {
	t.Helper()
	read := func(rel string) map[string]string {
		data, err := os.ReadFile(filepath.Join(testutil.RepoRoot(), rel))
		if err != nil {
			t.Fatal(err)
		}
		var cm struct {
			Data map[string]string `yaml:"data"`
		}
		dec := yaml.NewDecoder(strings.NewReader(string(data)))
		for {
			var doc struct {
				Kind string            `yaml:"kind"`
				Data map[string]string `yaml:"data"`
			}
			if err := dec.Decode(&doc); err != nil {
				break
			}
			if doc.Kind == "ConfigMap" {
				cm.Data = doc.Data
			}
		}
		if cm.Data["config.yaml"] == "" {
			t.Fatalf("%s: no ConfigMap with config.yaml", rel)
		}
		return cm.Data
	}
	// The policy is always the base's (the fleet overlay keeps it).
	pol := read("deploy/kubernetes/configmap.yaml")["policy.yaml"]
	var c map[string]any
	if err := yaml.Unmarshal([]byte(read(manifest)["config.yaml"]), &c); err != nil {
		t.Fatal(err)
	}
	file := func(name, content string) string {
		p := filepath.Join(d.Dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	section := func(m map[string]any, key string) map[string]any {
		v, ok := m[key].(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s section", manifest, key)
		}
		return v
	}
	c["listen"], c["admin_listen"], c["node"] = d.Listen, d.Admin, "deploy-test"
	section(c, "redirect")["enabled"] = false
	section(c, "kubernetes")["enabled"] = false
	backends, _ := c["backends"].([]any)
	if len(backends) != 1 {
		t.Fatalf("%s: %d backends, want the one default", manifest, len(backends))
	}
	b := backends[0].(map[string]any)
	b["address"], b["password_file"] = d.Maria.Addr, file("backend.pass", "warden-pass")
	delete(b, "destinations") // they bound a backend without an address
	c["identities"] = map[string]any{"clients": []any{map[string]any{
		"user": harness.ClientUser, "password": harness.ClientPassword, "name": harness.Identity}}}
	section(c, "audit")["dir"] = d.AuditDir
	if section(c, "audit")["ring_dir"] != nil {
		section(c, "audit")["ring_dir"] = d.RingDir // the shipped /run/sqlwarden is the node's
	}
	pc := section(c, "policy")
	pc["file"] = file("policy.yaml", pol)
	section(c, "admin")["token_file"] = file("admin.token", adminToken)
	natsURLs := 0
	fix := func(n map[string]any) {
		if n == nil {
			return
		}
		if _, ok := n["url"]; ok {
			n["url"] = natsURL
			natsURLs++
		}
		delete(n, "creds_file")
	}
	if ap, ok := pc["approvals"].(map[string]any); ok {
		fix(mapOf(ap["nats"]))
	}
	sinks, _ := section(c, "audit")["sinks"].([]any)
	for _, s := range sinks {
		fix(mapOf(mapOf(s)["nats"]))
	}
	if natsURL == "" && natsURLs > 0 {
		t.Fatalf("%s needs NATS (%d URLs): the base config must start without it", manifest, natsURLs)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func mapOf(v any) map[string]any { m, _ := v.(map[string]any); return m }

// checkShippedPolicy runs the shipped policy's rules through the daemon: a
// read, an unbounded write refused, and DDL refused in retry mode with a
// request an approver sees in the API, then approved, then run once by the
// retry.
func checkShippedPolicy(t *testing.T, d *harness.Daemon) {
	t.Helper()
	root := d.Maria.Open(t, "")
	mustExec(t, root, "DROP DATABASE IF EXISTS deploycfg")
	mustExec(t, root, "CREATE DATABASE deploycfg")
	mustExec(t, root, "CREATE TABLE deploycfg.t (id INT PRIMARY KEY)")
	mustExec(t, root, "INSERT INTO deploycfg.t VALUES (1), (2)")
	db := d.Open(t, "deploycfg")
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM t").Scan(&n); err != nil || n != 2 {
		t.Fatalf("SELECT through the shipped config: %d, %v", n, err)
	}
	if _, err := db.Exec("DELETE FROM t"); !isBlocked(err) {
		t.Fatalf("DELETE without WHERE: %v, want the shipped no-unbounded-writes refusal", err)
	}
	q := "ALTER TABLE t ADD COLUMN c INT"
	_, err := db.Exec(q)
	var me *gomysql.MySQLError
	if !errors.As(err, &me) || me.Number != 1227 || !pendingRE.MatchString(me.Message) {
		t.Fatalf("DDL: %v, want the retry-mode 1227 of the shipped ddl-needs-a-human rule", err)
	}
	id := pendingRE.FindStringSubmatch(me.Message)[1]
	p := waitPendingOn(t, d, q)
	if p.ID != id || p.Mode != "retry" {
		t.Fatalf("the API lists %+v, want request %s in retry mode", p, id)
	}
	if resp, body := adminCall(t, d, "POST", "/api/v1/approvals/"+id+"/approve", map[string]string{"approver": "ops"}); resp.StatusCode != 200 {
		t.Fatalf("approve: %s %s", resp.Status, body)
	}
	if _, err := db.Exec(q); err != nil {
		t.Fatalf("retry after approval: %v", err)
	}
	if err := root.QueryRow("SELECT COUNT(*) FROM information_schema.COLUMNS WHERE TABLE_SCHEMA='deploycfg' AND TABLE_NAME='t' AND COLUMN_NAME='c'").Scan(&n); err != nil || n != 1 {
		t.Fatalf("column c after the approved retry: %d, %v", n, err)
	}
}

// TestDeployConfigStarts: the DaemonSet's shipped ConfigMap starts a daemon
// with nothing but a backend — approvals in memory, the journal on disk, no
// NATS anywhere — and its policy works as shipped.
func TestDeployConfigStarts(t *testing.T) {
	d := harness.Start(t, harness.Options{Config: func(hd *harness.Daemon) string {
		return shippedConfig(t, "deploy/kubernetes/configmap.yaml", hd, "")
	}})
	checkShippedPolicy(t, d)
	recs := d.Settled(t)
	if len(recs) == 0 {
		t.Fatal("no journal records in audit.dir")
	}
}

// TestDeployFleetOverlayStarts: the fleet overlay's config
// (deploy/kubernetes-fleet) starts against a NATS server, keeps its
// approvals in the bucket and ships the journal to the stream.
func TestDeployFleetOverlayStarts(t *testing.T) {
	ns := testutil.StartNATS(t)
	d := harness.Start(t, harness.Options{Config: func(hd *harness.Daemon) string {
		return shippedConfig(t, "deploy/kubernetes-fleet/configmap.yaml", hd, ns.URL())
	}})
	checkShippedPolicy(t, d)

	nc, err := nats.Connect(ns.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	kv, err := js.KeyValue(ctx, "SQLWARDEN_APPROVALS")
	if err != nil {
		t.Fatalf("the approvals bucket: %v", err)
	}
	keys, err := kv.Keys(ctx)
	if err != nil || len(keys) == 0 {
		t.Fatalf("the approvals bucket holds %v (%v): the request was not shared", keys, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st, err := js.Stream(ctx, "SQLWARDEN_AUDIT")
		if err == nil {
			info, err := st.Info(ctx, jetstream.WithSubjectFilter("sqlwarden.audit.deploy-test"))
			if err == nil && info.State.Msgs > 0 && info.State.Subjects["sqlwarden.audit.deploy-test"] > 0 {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the stream SQLWARDEN_AUDIT has no record of node deploy-test: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
