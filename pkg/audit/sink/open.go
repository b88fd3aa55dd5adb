package sink

import (
	"fmt"
	"log/slog"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

// Open makes the sink an `audit.sinks` entry names; it is the journal's
// audit.Config.OpenSink.
func Open(sc audit.SinkConfig, node string, log *slog.Logger) (audit.Sink, error) {
	switch sc.Type {
	case audit.SinkNATS:
		return newNATSSink(sc.NATS, node, log)
	case audit.SinkWebhook:
		return newWebhookSink(sc.Webhook, node)
	case audit.SinkSyslog:
		return newSyslogSink(sc.Syslog, node)
	}
	return nil, fmt.Errorf("unknown sink type %q (nats|webhook|syslog)", sc.Type)
}
