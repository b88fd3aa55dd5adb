package sink

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/sqlwarden/sqlwarden/internal/testutil"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// natsServer runs a real nats-server with JetStream on a loopback port.
type natsServer struct {
	t     *testing.T
	port  int
	store string
	cmd   *exec.Cmd
}

func startNATS(t *testing.T) *natsServer {
	t.Helper()
	bin := testutil.RequireTool(t, "nats-server", "/usr/sbin/nats-server")
	s := &natsServer{t: t, port: freePort(t), store: t.TempDir()}
	s.start(bin)
	t.Cleanup(s.stop)
	return s
}

func (s *natsServer) start(bin string) {
	s.t.Helper()
	if bin == "" {
		bin = s.cmd.Path
	}
	s.cmd = exec.Command(bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.port), "-sd", s.store)
	s.cmd.Stdout, s.cmd.Stderr = io.Discard, io.Discard
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	testutil.Eventually(s.t, 10*time.Second, func() error {
		c, err := net.Dial("tcp", s.url()[len("nats://"):])
		if err != nil {
			return fmt.Errorf("nats-server did not start: %w", err)
		}
		c.Close()
		return nil
	})
}

func (s *natsServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil && s.cmd.ProcessState == nil {
		s.cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { s.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			s.cmd.Process.Kill()
			<-done
		}
	}
}

func (s *natsServer) url() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.port) }

func waitShipped(t *testing.T, j *audit.Journal, timeout time.Duration) {
	t.Helper()
	testutil.Eventually(t, timeout, func() error {
		st := j.Stats()
		for _, s := range st.Sinks {
			if s.ShippedSeq < st.LastSeq {
				return fmt.Errorf("sinks did not catch up: %+v", st)
			}
		}
		return nil
	})
}

func TestNATSSinkExactlyOnceInOrderAcrossRestart(t *testing.T) {
	srv := startNATS(t)
	dir := t.TempDir()
	sc := audit.SinkConfig{Name: "fleet", Type: audit.SinkNATS, MinBackoff: 50 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
		NATS: audit.NATSConfig{URL: srv.url(), Stream: "AUDIT", CreateStream: true, Timeout: 2 * time.Second}}
	j := openTest(t, dir, func(c *audit.Config) { c.Node = "node.a"; c.Sinks = []audit.SinkConfig{sc} })

	const total = 3000
	var wg sync.WaitGroup
	var appended atomic.Int64
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; i < total/4; i++ {
				if err := j.Append(stmt(w*1000 + i)); err != nil {
					t.Error(err)
					return
				}
				appended.Add(1)
				if i%50 == 0 {
					time.Sleep(time.Millisecond) // spread the load over the restart
				}
			}
		}(w)
	}
	// stop nats-server mid-load, keep appending (never blocked), restart it
	for appended.Load() < total/3 {
		time.Sleep(time.Millisecond)
	}
	srv.stop()
	time.Sleep(300 * time.Millisecond)
	if lag := j.Stats().Sinks[0].Lag; lag == 0 {
		t.Log("sink had no lag during the outage (load too light)")
	}
	srv.start("")
	wg.Wait()
	waitShipped(t, j, 30*time.Second)
	st := j.Stats().Sinks[0]
	t.Logf("sink stats: %+v", st)
	if st.Errors == 0 {
		t.Log("note: no sink errors seen during the outage")
	}
	last := j.LastSeq()

	// read the stream back with an ordered consumer
	nc, err := nats.Connect(srv.url())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	stream, err := js.Stream(ctx, "AUDIT")
	if err != nil {
		t.Fatal(err)
	}
	info, _ := stream.Info(ctx)
	if info.State.Msgs != last {
		t.Errorf("stream holds %d messages, journal has %d records", info.State.Msgs, last)
	}
	cons, err := stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(1)
	prev := audit.GenesisHash
	for want <= last {
		batch, err := cons.Fetch(500, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if m.Subject() != "sqlwarden.audit.node_a" {
				t.Fatalf("subject %s", m.Subject())
			}
			r, err := audit.CheckLine(m.Data())
			if err != nil {
				t.Fatalf("message %d: %v", want, err)
			}
			if r.Seq != want || r.PrevHash != prev {
				t.Fatalf("message order: got seq %d, want %d", r.Seq, want)
			}
			if m.Headers().Get(jetstream.MsgIDHeader) != r.Hash {
				t.Fatal("Nats-Msg-Id is not the record hash")
			}
			prev = r.Hash
			want++
		}
		if n == 0 {
			break
		}
	}
	if want != last+1 {
		t.Fatalf("read %d messages, want %d", want-1, last)
	}

	// the cursor is durable: a reopened journal ships only what is new
	j.Close()
	c, _, _ := audit.ReadCursor(dir + "/cursors/fleet.cursor")
	if c < last {
		t.Fatalf("cursor %d < %d", c, last)
	}
}

func TestWebhookSinkRetriesUntilRecovered(t *testing.T) {
	var mu sync.Mutex
	var got []uint64
	var fails atomic.Int32
	fails.Store(3)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if fails.Add(-1) >= 0 {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		if r.Header.Get("Content-Type") != "application/x-ndjson" || r.Header.Get("X-Token") != "t0ken" {
			http.Error(w, "bad request", 400)
			return
		}
		sc := bufio.NewScanner(r.Body)
		sc.Buffer(nil, 1<<20)
		mu.Lock()
		defer mu.Unlock()
		for sc.Scan() {
			rec, err := audit.CheckLine(sc.Bytes())
			if err != nil {
				http.Error(w, err.Error(), 400)
				return
			}
			got = append(got, rec.Seq)
		}
	}))
	defer srv.Close()
	sc := audit.SinkConfig{Type: audit.SinkWebhook, BatchSize: 7, MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
		Webhook: audit.WebhookConfig{URL: srv.URL, Headers: map[string]string{"X-Token": "t0ken"}}}
	j := openTest(t, t.TempDir(), func(c *audit.Config) { c.Sinks = []audit.SinkConfig{sc} })
	for i := 0; i < 50; i++ {
		if err := j.Append(stmt(i)); err != nil {
			t.Fatal(err)
		}
	}
	waitShipped(t, j, 10*time.Second)
	st := j.Stats().Sinks[0]
	j.Close() // ships the final checkpoint while the server is up
	if st.Errors < 3 || !strings.Contains(st.LastError, "503") {
		t.Fatalf("errors not counted: %+v", st)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, s := range got {
		if s != uint64(i+1) {
			t.Fatalf("webhook got seq %d at %d (all %v)", s, i, got)
		}
	}
	if uint64(len(got)) != j.LastSeq() || j.LastSeq() != 52 {
		t.Fatalf("got %d records, want %d", len(got), j.LastSeq())
	}
}

func TestSyslogSinkTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	msgs := make(chan string, 1000)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) {
				defer c.Close()
				br := bufio.NewReader(c)
				for {
					lenStr, err := br.ReadString(' ')
					if err != nil {
						return
					}
					n, err := strconv.Atoi(strings.TrimSpace(lenStr))
					if err != nil {
						return
					}
					buf := make([]byte, n)
					if _, err := io.ReadFull(br, buf); err != nil {
						return
					}
					msgs <- string(buf)
				}
			}(c)
		}
	}()
	sc := audit.SinkConfig{Type: audit.SinkSyslog, Syslog: audit.SyslogConfig{Address: l.Addr().String()}}
	j := openTest(t, t.TempDir(), func(c *audit.Config) { c.Node = "node-a"; c.Sinks = []audit.SinkConfig{sc} })
	for i := 0; i < 5; i++ {
		j.Append(stmt(i))
	}
	waitShipped(t, j, 10*time.Second)
	last := j.LastSeq()
	for want := uint64(1); want <= last; want++ {
		select {
		case m := <-msgs:
			// <134>1 TS node-a sqlwarden PID statement [sqlwarden@32473 seq="2" hash="..."] {json}
			f := strings.SplitN(m, " ", 9)
			if f[0] != "<134>1" || f[2] != "node-a" || f[3] != "sqlwarden" || f[6] != `[sqlwarden@32473` || f[7] != fmt.Sprintf(`seq="%d"`, want) {
				t.Fatalf("bad syslog message %q", m)
			}
			body := f[8][strings.Index(f[8], "] ")+2:]
			if _, err := audit.CheckLine([]byte(body)); err != nil {
				t.Fatalf("syslog body: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("syslog message %d not received", want)
		}
	}
	_ = bytes.MinRead
}
