package audit

import (
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
)

func TestConfigYAML(t *testing.T) {
	const doc = `
dir: /var/lib/sqlwarden/audit
sync: always
batch_window: 5ms
fail_open: false
segment_max_bytes: 1048576
segment_max_age: 30m
checkpoint_interval: 15s
key_file: /etc/sqlwarden/checkpoint.key
node: node-7
results: {enabled: true, max_rows: 5, max_bytes: 2048}
sinks:
  - name: fleet
    type: nats
    batch_size: 512
    max_backoff: 10s
    nats: {url: "nats://127.0.0.1:4222", subject_prefix: sqlwarden.audit, stream: AUDIT, create_stream: true, max_in_flight: 128, timeout: 3s}
  - type: webhook
    webhook: {url: "https://siem.example/ingest", headers: {X-Token: abc}, timeout: 5s}
  - type: syslog
    syslog: {address: "127.0.0.1:6514", facility: 10, tls: {enabled: true, ca_file: /etc/ca.pem}}
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	if c.Sync != SyncAlways || c.BatchWindow != 5*time.Millisecond || c.SegmentMaxAge != 30*time.Minute ||
		c.CheckpointInterval != 15*time.Second || c.SegmentMaxBytes != 1<<20 || c.Node != "node-7" || !c.Results.Enabled || c.Results.MaxRows != 5 {
		t.Fatalf("decoded %+v", c)
	}
	if len(c.Sinks) != 3 || c.Sinks[0].NATS.Stream != "AUDIT" || c.Sinks[0].NATS.Timeout != 3*time.Second ||
		c.Sinks[1].Webhook.Headers["X-Token"] != "abc" || !c.Sinks[2].Syslog.TLS.Enabled || c.Sinks[0].MaxBackoff != 10*time.Second {
		t.Fatalf("sinks %+v", c.Sinks)
	}
}
