package audit

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
)

// makeJournal writes n statements split over several segments and closes
// the journal cleanly. It returns the dir and the public key.
func makeJournal(t *testing.T, node string, n int) (string, ed25519.PublicKey) {
	t.Helper()
	dir := t.TempDir()
	j := openTest(t, dir, func(c *Config) { c.Node = node; c.SegmentMaxBytes = 3000 })
	for i := 1; i <= n; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
		if i == n/2 {
			if err := j.appendCheckpoint("", false); err != nil {
				t.Fatal(err)
			}
		}
	}
	pub := j.PublicKey()
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	return dir, pub
}

type segLines struct {
	path  string
	lines [][]byte
}

func loadLines(t *testing.T, dir string) []segLines {
	t.Helper()
	segs, err := ListSegments(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []segLines
	for _, s := range segs {
		b, err := os.ReadFile(s.Path)
		if err != nil {
			t.Fatal(err)
		}
		sl := segLines{path: s.Path}
		for _, l := range bytes.SplitAfter(b, []byte("\n")) {
			if len(l) > 0 {
				sl.lines = append(sl.lines, l)
			}
		}
		out = append(out, sl)
	}
	return out
}

func saveLines(t *testing.T, s segLines) {
	t.Helper()
	if err := os.WriteFile(s.path, bytes.Join(s.lines, nil), 0o600); err != nil {
		t.Fatal(err)
	}
}

// findLine locates the line holding seq.
func findLine(t *testing.T, segs []segLines, seq uint64) (int, int) {
	t.Helper()
	for si, s := range segs {
		for li, l := range s.lines {
			r, err := DecodeLine(bytes.TrimSuffix(l, []byte("\n")))
			if err == nil && r.Seq == seq {
				return si, li
			}
		}
	}
	t.Fatalf("seq %d not found", seq)
	return 0, 0
}

func verifyAt(t *testing.T, dir string, pub ed25519.PublicKey, now time.Time) *Report {
	t.Helper()
	rep, err := VerifyWith(dir, VerifyOptions{PublicKey: pub, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// rechain recomputes prev_hash/hash of every line from (si, li) on, as an
// attacker who edits a record and re-hashes the rest would. Checkpoints are
// re-signed with key when key is non-nil, else left as they were.
func rechain(t *testing.T, segs []segLines, si, li int, key ed25519.PrivateKey) {
	t.Helper()
	prev := GenesisHash
	first := true
	for s := range segs {
		for l := range segs[s].lines {
			line := bytes.TrimSuffix(segs[s].lines[l], []byte("\n"))
			r, err := DecodeLine(line)
			if err != nil {
				t.Fatal(err)
			}
			if s < si || (s == si && l < li) {
				prev = r.Hash
				continue
			}
			_ = first
			if r.Checkpoint != nil && key != nil {
				r.Checkpoint.Head, r.Checkpoint.Records = prev, r.Seq-1
				r.Checkpoint.KeyID = KeyID(key.Public().(ed25519.PublicKey))
				r.Checkpoint.Signature = base64.StdEncoding.EncodeToString(ed25519.Sign(key,
					CheckpointMessage(r.Node, r.Checkpoint.Records, prev, r.TS, r.Checkpoint.Final, r.Checkpoint.IntervalMS)))
			}
			var buf bytes.Buffer
			body, err := encodeBody(&buf, r)
			if err != nil {
				t.Fatal(err)
			}
			canon, err := spliceInto(nil, body, r.Seq, prev)
			if err != nil {
				t.Fatal(err)
			}
			out := appendHashSuffix(canon, sha256.Sum256(canon))
			segs[s].lines[l] = out
			prev = string(out[len(out)-67 : len(out)-3])
		}
	}
}

func TestVerifyTamper(t *testing.T) {
	later := time.Now().Add(24 * time.Hour)
	cases := []struct {
		name   string
		tamper func(t *testing.T, dir string)
		kind   string
		seq    uint64
	}{
		{"untouched", func(t *testing.T, dir string) {}, "", 0},
		{"edit a field", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			si, li := findLine(t, segs, 7)
			segs[si].lines[li] = bytes.Replace(segs[si].lines[li], []byte(`"db":"shop"`), []byte(`"db":"shoq"`), 1)
			saveLines(t, segs[si])
		}, ProblemEdited, 7},
		{"delete a record", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			si, li := findLine(t, segs, 9)
			segs[si].lines = append(segs[si].lines[:li], segs[si].lines[li+1:]...)
			saveLines(t, segs[si])
		}, ProblemDeleted, 10},
		{"swap two", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			si, li := findLine(t, segs, 12)
			if li+1 >= len(segs[si].lines) {
				si, li = findLine(t, segs, 14)
			}
			l := segs[si].lines
			l[li], l[li+1] = l[li+1], l[li]
			saveLines(t, segs[si])
		}, ProblemReordered, 0},
		{"truncate the tail", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			last := segs[len(segs)-1]
			if len(last.lines) < 2 {
				os.Remove(last.path)
				last = segs[len(segs)-2]
			}
			last.lines = last.lines[:len(last.lines)-2]
			saveLines(t, last)
		}, ProblemTruncated, 0},
		{"delete a whole segment", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			os.Remove(segs[1].path)
		}, ProblemDeleted, 0},
		{"edit and re-hash without the key", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			si, li := findLine(t, segs, 5)
			segs[si].lines[li] = bytes.Replace(segs[si].lines[li], []byte(`SELECT 4`), []byte(`SELECT 8`), 1)
			rechain(t, segs, si, li, nil)
			for _, s := range segs {
				saveLines(t, s)
			}
		}, ProblemCheckpoint, 0},
		{"forge a checkpoint", func(t *testing.T, dir string) {
			segs := loadLines(t, dir)
			si, li := findLine(t, segs, 5)
			segs[si].lines[li] = bytes.Replace(segs[si].lines[li], []byte(`SELECT 4`), []byte(`SELECT 8`), 1)
			_, other, _ := ed25519.GenerateKey(rand.Reader)
			rechain(t, segs, si, li, other)
			for _, s := range segs {
				saveLines(t, s)
			}
		}, ProblemForged, 0},
		{"splice a segment from another node", func(t *testing.T, dir string) {
			odir, _ := makeJournal(t, "node-b", 40)
			mine, theirs := loadLines(t, dir), loadLines(t, odir)
			// replace one of node-a's segments (not the first) with
			// node-b's segment that starts at the same seq
			for _, target := range mine[1:] {
				first, _ := DecodeLine(bytes.TrimSuffix(target.lines[0], []byte("\n")))
				for _, s := range theirs {
					r, _ := DecodeLine(bytes.TrimSuffix(s.lines[0], []byte("\n")))
					if r.Seq == first.Seq {
						target.lines = s.lines
						saveLines(t, target)
						return
					}
				}
			}
			t.Fatalf("the two journals have no segment boundary in common (%d and %d segments)", len(mine), len(theirs))
		}, ProblemSplice, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir, pub := makeJournal(t, "node-a", 40)
			tc.tamper(t, dir)
			rep := verifyAt(t, dir, pub, later)
			if tc.kind == "" {
				if !rep.OK || len(rep.Warnings) != 0 {
					t.Fatalf("untouched journal does not verify: %+v", rep)
				}
				if rep.Records != 43 || rep.LastCheckpoint == nil || !rep.LastCheckpoint.Final || !rep.LastCheckpoint.Signed {
					t.Fatalf("report: %+v", rep)
				}
				return
			}
			p, ok := rep.First()
			if !ok || rep.OK {
				t.Fatalf("tampering not detected: %+v", rep)
			}
			if p.Kind != tc.kind || (tc.seq != 0 && p.Seq != tc.seq) {
				t.Fatalf("first problem = %v, want kind %s seq %d (all: %v)", p, tc.kind, tc.seq, rep.Problems)
			}
			for _, w := range rep.Problems {
				if w.Kind == ProblemTorn {
					t.Fatalf("tampering reported as torn: %v", w)
				}
			}
		})
	}
}

func TestVerifyTornIsNotTampering(t *testing.T) {
	dir, pub := makeJournal(t, "node-a", 10)
	segs, _ := ListSegments(dir)
	f, _ := os.OpenFile(segs[len(segs)-1].Path, os.O_WRONLY|os.O_APPEND, 0)
	f.WriteString(`{"ts":"2026-01-01T00:00:00Z","event":"stat`)
	f.Close()
	rep := verifyAt(t, dir, pub, time.Now())
	if !rep.OK {
		t.Fatalf("torn tail failed verification: %v", rep.Problems)
	}
	if len(rep.Warnings) != 1 || rep.Warnings[0].Kind != ProblemTorn {
		t.Fatalf("torn tail not reported: %+v", rep.Warnings)
	}
	// after recovery by Open the journal verifies clean and the chain continues
	j := openTest(t, dir, nil)
	j.Append(stmt(1))
	j.Close()
	rep = verifyAt(t, dir, pub, time.Now())
	if !rep.OK || len(rep.Warnings) != 0 {
		t.Fatalf("after recovery: %+v %+v", rep.Problems, rep.Warnings)
	}
}

func TestVerifyStaleTail(t *testing.T) {
	dir := t.TempDir()
	j := openTest(t, dir, func(c *Config) { c.CheckpointInterval = 20 * time.Millisecond })
	j.Append(stmt(1))
	pub := j.PublicKey()
	// a live journal verifies (fresh checkpoints written while idle); the
	// ticks may come late on a loaded machine, so wait for them
	var rep *Report
	testutil.Eventually(t, 20*time.Second, func() error {
		rep = verifyAt(t, dir, pub, time.Now())
		if rep.Checkpoints < 2 {
			return fmt.Errorf("%d checkpoints, waiting for two", rep.Checkpoints)
		}
		return nil
	})
	if !rep.OK {
		t.Fatalf("live journal: %+v", rep)
	}
	j.Close()
	// simulate the daemon dying: drop the final checkpoint, look later
	segs := loadLines(t, dir)
	last := segs[len(segs)-1]
	last.lines = last.lines[:len(last.lines)-1]
	saveLines(t, last)
	rep = verifyAt(t, dir, pub, time.Now().Add(time.Hour))
	if p, _ := rep.First(); rep.OK || p.Kind != ProblemTruncated {
		t.Fatalf("stale tail: %+v", rep)
	}
	if !strings.Contains(rep.Problems[0].Reason, "truncated") {
		t.Fatalf("reason: %s", rep.Problems[0].Reason)
	}
	_ = filepath.Base
}
