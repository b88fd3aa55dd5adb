package audit

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

const crashChildEnv = "SQLWARDEN_AUDIT_CRASH_CHILD"

// crashChild appends from 8 goroutines forever, printing every acknowledged
// record ("session statement_id") once Append returned.
func crashChild(dir, round, syncMode string, segmentMax int64, ringDir string) {
	j, err := Open(Config{Dir: dir, Node: "node-a", Log: testLog(), CheckpointInterval: 20 * time.Millisecond,
		SegmentMaxBytes: segmentMax, Sync: syncMode, RingDir: ringDir})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	out := bufio.NewWriter(os.Stdout)
	var mu sync.Mutex
	for w := 0; w < 8; w++ {
		go func(w int) {
			sess := fmt.Sprintf("%s-%d", round, w)
			for i := uint64(1); ; i++ {
				r := &record.Record{Event: record.EventStatement, SessionID: sess, StatementID: i, Command: "COM_QUERY",
					SQL: strings.Repeat("SELECT 1; ", int(i%50))}
				if err := j.Append(r); err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(4)
				}
				mu.Lock()
				fmt.Fprintf(out, "%s %d\n", sess, i)
				out.Flush()
				mu.Unlock()
			}
		}(w)
	}
	select {}
}

func TestMain(m *testing.M) {
	if dir := os.Getenv(crashChildEnv); dir != "" {
		segMax, _ := strconv.ParseInt(os.Getenv(crashChildEnv+"_SEGMENT_MAX"), 10, 64)
		crashChild(dir, os.Getenv(crashChildEnv+"_ROUND"), os.Getenv(crashChildEnv+"_SYNC"), segMax, os.Getenv(crashChildEnv+"_RING"))
		return
	}
	os.Exit(m.Run())
}

// TestKill9UnderLoad kills a writer process with SIGKILL mid-load ten times
// or more:
// every acknowledged record must be in the journal afterwards (pwritten
// into the live segment's allocated blocks, it is in the page cache, which
// outlives the process), and the journal must verify (a torn final record
// may be reported, never tampering) before and after Open cuts the live
// segment's zero tail. With small segments the kills also land
// mid-rotation. With a ring (sync batch, Config.RingDir) the records the
// kill left only in the ring are replayed by the next Open, which the test
// does before reading: the ring's promise is the same, kept at restart.
func TestKill9UnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	for _, tc := range []struct {
		name       string
		sync       string
		segmentMax int64
		ring       bool
	}{{"one segment", SyncBatch, 0, false}, {"rotating", SyncBatch, 48 << 10, false}, {"always", SyncAlways, 48 << 10, false},
		{"ring", SyncBatch, 0, true}, {"ring rotating", SyncBatch, 48 << 10, true}} {
		t.Run(tc.name, func(t *testing.T) {
			ringDir := ""
			if tc.ring {
				ringDir = t.TempDir()
			}
			kill9UnderLoad(t, tc.sync, tc.segmentMax, ringDir)
		})
	}
}

func kill9UnderLoad(t *testing.T, syncMode string, segmentMax int64, ringDir string) {
	dir := t.TempDir()
	var pub []byte
	zeroTails, replays := 0, 0
	// Ten rounds, and more (up to 30) until a kill has landed where the
	// checks below need one: on a loaded machine the ring can be drained
	// at the moment of every one of ten kills.
	exercised := func() bool { return zeroTails > 0 && (ringDir == "" || replays > 0) }
	for round := 0; round < 10 || (round < 30 && !exercised()); round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), crashChildEnv+"="+dir, fmt.Sprintf("%s_ROUND=r%d", crashChildEnv, round),
			fmt.Sprintf("%s_SEGMENT_MAX=%d", crashChildEnv, segmentMax), crashChildEnv+"_SYNC="+syncMode, crashChildEnv+"_RING="+ringDir)
		stdout, _ := cmd.StdoutPipe()
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		acked := map[string]uint64{}
		sc := bufio.NewScanner(stdout)
		n := 0
		target := 200 + round*97
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) == 2 {
				id, _ := strconv.ParseUint(f[1], 10, 64)
				acked[f[0]] = max(acked[f[0]], id)
			}
			if n++; n == target {
				cmd.Process.Kill() // SIGKILL mid-load
			}
		}
		cmd.Wait()
		if n < target {
			t.Fatalf("round %d: child died early after %d acks: %s", round, n, stderr.String())
		}
		// the live segment had blocks allocated ahead of its records
		segs, _ := ListSegments(dir)
		if b, err := os.ReadFile(segs[len(segs)-1].Path); err == nil && len(b) > 0 && b[len(b)-1] == 0 {
			zeroTails++
		}
		if ringDir != "" {
			// the restart that replays the ring
			j, err := Open(Config{Dir: dir, Node: "node-a", Log: testLog(), SegmentMaxBytes: segmentMax, Sync: syncMode, RingDir: ringDir})
			if err != nil {
				t.Fatalf("round %d: open after kill -9: %v", round, err)
			}
			if err := j.Close(); err != nil {
				t.Fatalf("round %d: close: %v", round, err)
			}
		}
		// every acknowledged record is present (the page cache survives the process)
		found := map[string]uint64{}
		if err := ReadAll(dir, func(r *record.Record) error {
			if r.Event == record.EventStatement {
				found[r.SessionID] = max(found[r.SessionID], r.StatementID)
			}
			if r.Event == record.EventCheckpoint && strings.Contains(r.Reason, "records from the ring after a crash") {
				replays++
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for s, id := range acked {
			if found[s] < id {
				t.Fatalf("round %d: session %s acknowledged up to %d, journal has %d", round, s, id, found[s])
			}
		}
		if pub == nil {
			k, err := ReadPublicKey(dir + "/" + DefaultKeyFileName + ".pub")
			if err != nil {
				t.Fatal(err)
			}
			pub = k
		}
		rep, err := VerifyWith(dir, VerifyOptions{PublicKey: pub})
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK {
			t.Fatalf("round %d: verify after kill -9: %v", round, rep.Problems)
		}
		for _, w := range rep.Warnings {
			if w.Kind != ProblemTorn {
				t.Fatalf("round %d: unexpected warning %v", round, w)
			}
		}
	}
	if zeroTails == 0 {
		t.Fatal("no kill left a live segment with a zero tail: the preallocated path was not exercised")
	}
	if ringDir != "" && replays == 0 {
		t.Fatal("no kill left records in the ring for the next Open to replay: the ring was not exercised")
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "ring-unreplayed-*")); len(left) > 0 {
		t.Fatalf("an Open could not replay the ring (saved as %v)", left)
	}
	// a final open recovers whatever tail is left and the whole journal verifies clean
	j := openTest(t, dir, nil)
	j.Close()
	rep, _ := VerifyWith(dir, VerifyOptions{PublicKey: pub})
	if !rep.OK || len(rep.Warnings) != 0 {
		t.Fatalf("final verify: %+v %+v", rep.Problems, rep.Warnings)
	}
	t.Logf("%d records over %d segments after 10 kills", rep.Records, rep.Segments)
}
