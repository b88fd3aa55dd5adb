package sink

import (
	"context"
	"fmt"
	"io"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

// TailNATS is audit.Tail over the stream the nats sink writes: the last records
// of every node (or of node), then, with Follow, each record as it arrives.
func TailNATS(ctx context.Context, w io.Writer, src NATSSource, node string, o audit.TailOptions) error {
	var ring [][]byte
	var last uint64 // stream sequence of the newest message read
	err := ReadNATS(ctx, src, node, 0, false, func(m NATSMsg) error {
		last = m.StreamSeq
		if o.N > 0 && len(ring) == o.N {
			ring = ring[1:]
		}
		if o.N != 0 {
			ring = append(ring, append([]byte(nil), m.Line...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, l := range ring {
		audit.WriteLine(w, l, o.JSON)
	}
	if !o.Follow {
		return nil
	}
	if o.Notice != nil {
		fmt.Fprintf(o.Notice, "audit tail: following stream %s (%s) after stream seq %d\n", src.Stream, src.Subject(node), last)
	}
	return ReadNATS(ctx, src, node, last, true, func(m NATSMsg) error {
		audit.WriteLine(w, m.Line, o.JSON)
		return nil
	})
}
