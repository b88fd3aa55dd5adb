package sink

import (
	"context"
	"fmt"
	"os"

	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

// VerifyAgainstStream verifies a node's chain as the stream holds it and,
// with a local journal dir, that the local chain holds everything the stream
// does (same head sequence and hash). It returns the report and what was
// verified, for audit.WriteReport.
func VerifyAgainstStream(ctx context.Context, src NATSSource, dir string, opt audit.VerifyOptions) (*audit.Report, string, error) {
	tmp, err := os.MkdirTemp("", "sqlwarden-verify-")
	if err != nil {
		return nil, "", err
	}
	defer os.RemoveAll(tmp)
	n, err := StreamCopy(ctx, src, opt.Node, tmp)
	if err != nil {
		return nil, "", err
	}
	where := fmt.Sprintf("stream %s (%s)", src.Stream, src.Subject(opt.Node))
	if dir == "" {
		if n == 0 {
			return &audit.Report{Node: opt.Node, Problems: []audit.Problem{{Kind: audit.ProblemMissingStart, Segment: where,
				Reason: "the stream holds no record of this node"}}}, where, nil
		}
		rep, err := audit.VerifyWith(tmp, opt)
		return rep, where, err
	}
	rep, err := audit.VerifyWith(dir, opt)
	if err != nil {
		return nil, "", err
	}
	var head StreamHead
	if n > 0 {
		// The stream's own chain must hold too; its findings are the
		// stream's, not the local journal's.
		srep, err := audit.VerifyWith(tmp, audit.VerifyOptions{PublicKey: opt.PublicKey, Node: opt.Node, Now: opt.Now, StaleAfter: -1})
		if err != nil {
			return nil, "", err
		}
		for _, p := range srep.Problems {
			if p.Kind == audit.ProblemMissingStart {
				continue // a stream with limits may have dropped the oldest records
			}
			p.Segment = where
			rep.Problems = append(rep.Problems, p)
		}
		head = HeadOf(srep)
	}
	if err := CompareWithStream(dir, head, rep, where); err != nil {
		return nil, "", err
	}
	rep.OK = len(rep.Problems) == 0
	return rep, dir + " against " + where, nil
}
