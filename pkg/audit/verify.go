package audit

import (
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// Problem kinds reported by Verify. Users script against these strings.
const (
	ProblemEdited       = "edited"        // a record's content does not match its hash
	ProblemMalformed    = "malformed"     // a complete line that is not a journal record
	ProblemDeleted      = "deleted"       // records missing from the sequence
	ProblemReordered    = "reordered"     // seq goes backwards or records swapped
	ProblemDuplicated   = "duplicated"    // the same seq twice
	ProblemChain        = "chain"         // prev_hash does not match the previous record
	ProblemSplice       = "splice"        // a record from another node's journal
	ProblemCheckpoint   = "checkpoint"    // a checkpoint inconsistent with the chain
	ProblemForged       = "forged"        // a checkpoint signature that does not verify
	ProblemTruncated    = "truncated"     // the tail after the last checkpoint is missing or stale
	ProblemMissingStart = "missing_start" // the journal does not begin at the genesis record
	ProblemSegment      = "segment"       // a segment whose name does not match its first record
	ProblemTorn         = "torn"          // an unterminated final line: a crash, not tampering (warning)
	ProblemGap          = "gap"           // checkpoints further apart than their interval (warning)
	ProblemRing         = "ring"          // records in the write-ahead ring, not yet in the segments (warning)
)

// Problem is one finding of Verify.
type Problem struct {
	Kind    string `json:"kind"`
	Segment string `json:"segment,omitempty"`
	Line    int    `json:"line,omitempty"` // 1-based line in the segment
	Seq     uint64 `json:"seq,omitempty"`
	Reason  string `json:"reason"`
}

func (p Problem) String() string {
	loc := filepath.Base(p.Segment)
	if p.Line > 0 {
		loc += fmt.Sprintf(":%d", p.Line)
	}
	if p.Seq > 0 {
		loc += fmt.Sprintf(" seq %d", p.Seq)
	}
	return fmt.Sprintf("%s: %s: %s", p.Kind, loc, p.Reason)
}

// CheckpointInfo summarises one checkpoint seen by Verify.
type CheckpointInfo struct {
	Seq     uint64    `json:"seq"`
	Records uint64    `json:"records"`
	TS      time.Time `json:"ts"`
	Final   bool      `json:"final,omitempty"`
	Signed  bool      `json:"signed"` // signature checked and valid
}

// Report is the result of Verify. OK is false when Problems is non-empty;
// Warnings (torn tails, checkpoint gaps, unverified signatures) do not fail.
type Report struct {
	OK             bool            `json:"ok"`
	Node           string          `json:"node"`
	Segments       int             `json:"segments"`
	Records        uint64          `json:"records"`
	Checkpoints    int             `json:"checkpoints"`
	FirstSeq       uint64          `json:"first_seq"`
	LastSeq        uint64          `json:"last_seq"`
	Head           string          `json:"head"`
	LastCheckpoint *CheckpointInfo `json:"last_checkpoint,omitempty"`
	Unprotected    uint64          `json:"unprotected"` // records after the last checkpoint
	Problems       []Problem       `json:"problems,omitempty"`
	Warnings       []Problem       `json:"warnings,omitempty"`
}

// First returns the first problem (the first bad record), if any.
func (r *Report) First() (Problem, bool) {
	if len(r.Problems) == 0 {
		return Problem{}, false
	}
	return r.Problems[0], true
}

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// PublicKey verifies checkpoint signatures. Without it signatures are
	// not checked and a warning says so.
	PublicKey ed25519.PublicKey
	// Node is the node whose journal this must be (default: the node of the
	// first record).
	Node string
	// Now is the verification time (default time.Now()).
	Now time.Time
	// StaleAfter: a journal whose last record is not a final (clean
	// shutdown) checkpoint and whose last checkpoint is older than this is
	// reported as truncated. Default: 2 checkpoint intervals + 30s. Negative
	// disables the check.
	StaleAfter time.Duration
}

// Verify walks every segment of the journal in dir and checks the hash
// chain, sequence, node and checkpoint signatures (see VerifyWith).
func Verify(dir string, pub ed25519.PublicKey) (*Report, error) {
	return VerifyWith(dir, VerifyOptions{PublicKey: pub})
}

type vline struct {
	seg  Segment
	line int
	rec  *record.Record // nil when the line is bad
	hash string         // claimed hash (when SplitLine worked)
	bad  *Problem
}

// VerifyWith is Verify with options. The error is for I/O failures only;
// journal damage is reported in the Report.
func VerifyWith(dir string, opt VerifyOptions) (*Report, error) {
	if opt.Now.IsZero() {
		opt.Now = time.Now()
	}
	segs, err := ListSegments(dir)
	if err != nil {
		return nil, err
	}
	rep := &Report{Segments: len(segs), Node: opt.Node}
	if len(segs) == 0 {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemMissingStart, Segment: dir, Reason: "no journal segments"})
		return rep, nil
	}
	if opt.PublicKey == nil {
		rep.Warnings = append(rep.Warnings, Problem{Kind: ProblemForged, Segment: dir, Reason: "no public key: checkpoint signatures not verified"})
	}
	v := &verifier{rep: rep, opt: opt, head: GenesisHash}
	for si, seg := range segs {
		lines, torn, err := loadSegment(seg)
		if err != nil {
			return nil, err
		}
		v.segment(seg, lines, si == len(segs)-1)
		if len(torn) > 0 {
			rep.Warnings = append(rep.Warnings, Problem{Kind: ProblemTorn, Segment: seg.Path, Line: len(lines) + 1,
				Reason: fmt.Sprintf("unterminated final record (%d bytes): a write cut short by a crash, not tampering", len(torn))})
		}
	}
	v.finish()
	if n, path := ringBacklog(dir, v.lastSeq, v.head); n > 0 {
		rep.Warnings = append(rep.Warnings, Problem{Kind: ProblemRing, Segment: path, Seq: v.lastSeq + 1,
			Reason: fmt.Sprintf("%d records after seq %d are in the write-ahead ring, not yet in the segments: the daemon is running (it writes them within batch_window), or it was killed and has not started again (its next start writes them)", n, v.lastSeq)})
	}
	rep.OK = len(rep.Problems) == 0
	return rep, nil
}

func loadSegment(seg Segment) ([]vline, []byte, error) {
	f, err := os.Open(seg.Path)
	if err != nil {
		return nil, nil, fmt.Errorf("open segment: %w", err)
	}
	defer f.Close()
	sc := newLineScanner(f)
	var out []vline
	for n := 1; ; n++ {
		line, err := sc.next()
		if errors.Is(err, io.EOF) {
			return out, sc.torn, nil
		}
		if err != nil {
			return nil, nil, err
		}
		vl := vline{seg: seg, line: n}
		canonical, h, serr := SplitLine(line)
		if serr != nil {
			vl.bad = &Problem{Kind: ProblemMalformed, Reason: serr.Error()}
			if r, derr := DecodeLine(line); derr == nil {
				vl.rec = r
				vl.bad.Kind = ProblemEdited
				vl.bad.Reason = "hash member removed or altered"
			}
		} else {
			vl.hash = h
			r, derr := DecodeLine(line)
			switch {
			case derr != nil:
				vl.bad = &Problem{Kind: ProblemMalformed, Reason: derr.Error()}
			case ComputeHash(canonical) != h:
				vl.rec = r
				vl.bad = &Problem{Kind: ProblemEdited, Reason: "content does not match its hash (record edited)"}
			default:
				vl.rec = r
			}
		}
		out = append(out, vl)
	}
}

type verifier struct {
	rep     *Report
	opt     VerifyOptions
	head    string
	lastSeq uint64
	started bool
	lastCP  *record.Record
	lastRec *record.Record
}

func (v *verifier) fail(vl vline, seq uint64, kind, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{Kind: kind, Segment: vl.seg.Path, Line: vl.line, Seq: seq, Reason: fmt.Sprintf(format, args...)})
}

func (v *verifier) warn(vl vline, seq uint64, kind, format string, args ...any) {
	v.rep.Warnings = append(v.rep.Warnings, Problem{Kind: kind, Segment: vl.seg.Path, Line: vl.line, Seq: seq, Reason: fmt.Sprintf(format, args...)})
}

func (v *verifier) segment(seg Segment, lines []vline, last bool) {
	for i, vl := range lines {
		r := vl.rec
		if vl.bad != nil {
			seq := uint64(0)
			if r != nil {
				seq = r.Seq
			}
			v.fail(vl, seq, vl.bad.Kind, "%s", vl.bad.Reason)
			if r != nil && vl.hash != "" {
				// keep walking on the claimed hash so one edit is one problem
				v.head, v.lastSeq = vl.hash, r.Seq
				v.started = true
			}
			continue
		}
		if i == 0 && r.Seq != seg.FirstSeq {
			v.fail(vl, r.Seq, ProblemSegment, "segment named for seq %d starts with seq %d", seg.FirstSeq, r.Seq)
		}
		if v.rep.Node == "" {
			v.rep.Node = r.Node
		}
		if !v.started {
			v.started = true
			v.rep.FirstSeq = r.Seq
			if r.Seq != 1 || r.PrevHash != GenesisHash {
				v.fail(vl, r.Seq, ProblemMissingStart, "journal starts at seq %d, not at the genesis record: earlier records or segments are missing", r.Seq)
			}
			v.accept(vl, r)
			continue
		}
		expect := v.lastSeq + 1
		switch {
		case r.Node != v.rep.Node:
			v.fail(vl, r.Seq, ProblemSplice, "record from node %q in the journal of node %q", r.Node, v.rep.Node)
		case r.Seq == v.lastSeq:
			v.fail(vl, r.Seq, ProblemDuplicated, "seq %d appears twice", r.Seq)
		case r.Seq < expect:
			v.fail(vl, r.Seq, ProblemReordered, "seq %d follows seq %d: records out of order", r.Seq, v.lastSeq)
		case r.Seq > expect:
			if laterHas(lines[i+1:], expect) {
				v.fail(vl, r.Seq, ProblemReordered, "seq %d where %d was expected, which comes later: records swapped", r.Seq, expect)
			} else if r.PrevHash == v.head {
				v.fail(vl, r.Seq, ProblemDeleted, "seq jumps from %d to %d but prev_hash links: sequence numbers rewritten", v.lastSeq, r.Seq)
			} else {
				v.fail(vl, r.Seq, ProblemDeleted, "records %d..%d missing", expect, r.Seq-1)
			}
		case r.PrevHash != v.head:
			if i == 0 {
				v.fail(vl, r.Seq, ProblemChain, "first record of segment does not link to the previous segment's last record (prev_hash %s, previous hash %s): segment replaced or spliced", short(r.PrevHash), short(v.head))
			} else {
				v.fail(vl, r.Seq, ProblemChain, "prev_hash %s does not match the previous record's hash %s: record replaced", short(r.PrevHash), short(v.head))
			}
		}
		v.accept(vl, r)
	}
}

func laterHas(lines []vline, seq uint64) bool {
	for k, l := range lines {
		if k > 64 {
			break
		}
		if l.rec != nil && l.rec.Seq == seq {
			return true
		}
	}
	return false
}

func (v *verifier) accept(vl vline, r *record.Record) {
	v.head, v.lastSeq = r.Hash, r.Seq
	v.lastRec = r
	v.rep.Records++
	v.rep.LastSeq, v.rep.Head = r.Seq, r.Hash
	if r.Event == record.EventCheckpoint && r.Checkpoint != nil {
		v.checkpoint(vl, r)
	}
}

func (v *verifier) checkpoint(vl vline, r *record.Record) {
	cp := r.Checkpoint
	v.rep.Checkpoints++
	info := &CheckpointInfo{Seq: r.Seq, Records: cp.Records, TS: r.TS, Final: cp.Final}
	if cp.Head != r.PrevHash || cp.Records != r.Seq-1 {
		v.fail(vl, r.Seq, ProblemCheckpoint, "checkpoint covers %d records with head %s, but the chain before it has %d records with head %s",
			cp.Records, short(cp.Head), r.Seq-1, short(r.PrevHash))
	}
	if v.opt.PublicKey != nil {
		sig, err := base64.StdEncoding.DecodeString(cp.Signature)
		msg := CheckpointMessage(r.Node, cp.Records, cp.Head, r.TS, cp.Final, cp.IntervalMS)
		switch {
		case err != nil || len(sig) != ed25519.SignatureSize:
			v.fail(vl, r.Seq, ProblemForged, "checkpoint signature is not a valid ed25519 signature")
		case !ed25519.Verify(v.opt.PublicKey, msg, sig):
			reason := "checkpoint signature does not verify with the given public key"
			if cp.KeyID != KeyID(v.opt.PublicKey) {
				reason += fmt.Sprintf(" (signed by key %s, expected %s)", cp.KeyID, KeyID(v.opt.PublicKey))
			}
			v.fail(vl, r.Seq, ProblemForged, "%s", reason)
		default:
			info.Signed = true
		}
	}
	if prev := v.lastCP; prev != nil && !prev.Checkpoint.Final && r.Reason == "" && cp.IntervalMS > 0 {
		gap := r.TS.Sub(prev.TS)
		if gap > 2*time.Duration(cp.IntervalMS)*time.Millisecond+30*time.Second {
			v.warn(vl, r.Seq, ProblemGap, "%s since the previous checkpoint (seq %d), interval is %dms", gap.Round(time.Millisecond), prev.Seq, cp.IntervalMS)
		}
	}
	v.lastCP = r
	v.rep.LastCheckpoint = info
}

func (v *verifier) finish() {
	rep := v.rep
	if v.lastRec == nil {
		if len(rep.Problems) == 0 {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemMissingStart, Reason: "journal holds no valid record"})
		}
		return
	}
	if v.lastCP == nil {
		rep.Problems = append(rep.Problems, Problem{Kind: ProblemTruncated, Seq: rep.LastSeq,
			Reason: "no checkpoint in the journal: nothing is signed"})
		rep.Unprotected = rep.Records
		return
	}
	rep.Unprotected = rep.LastSeq - v.lastCP.Seq
	if v.lastCP.Checkpoint.Final && rep.Unprotected == 0 {
		return // clean shutdown: the last record is the final checkpoint
	}
	stale := v.opt.StaleAfter
	if stale == 0 {
		stale = 2*time.Duration(v.lastCP.Checkpoint.IntervalMS)*time.Millisecond + 30*time.Second
	}
	if stale > 0 {
		if age := v.opt.Now.Sub(v.lastCP.TS); age > stale {
			rep.Problems = append(rep.Problems, Problem{Kind: ProblemTruncated, Seq: rep.LastSeq,
				Reason: fmt.Sprintf("last checkpoint (seq %d) is %s old and no clean-shutdown checkpoint follows: records after it may have been truncated (or the daemon died and has not restarted)",
					v.lastCP.Seq, age.Round(time.Second))})
		}
	}
}
