package main

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log"
	"math"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/approval"
	"github.com/sqlwarden/sqlwarden/pkg/audit"
)

type config struct {
	dsn, admin, token, auditDir, csv, summary string
	pid                                       int
	duration, interval, warmup                time.Duration
	rate, workers                             int
	approvalEvery, churnEvery                 time.Duration
}

type sample struct {
	t                   float64
	rssMB, gor, fds     float64
	lagMS, p50MS, p99MS float64
	statements, errors  int64
}

// counters of the run, by kind of statement and outcome.
type counters struct {
	mu   sync.Mutex
	ok   map[string]int64
	errs map[string]int64 // unexpected errors by kind
	prov map[string]int64 // errors the workload provokes, by kind
	lat  []time.Duration  // latencies since the last sample
}

func (c *counters) done(kind string, d time.Duration, err error, provoked bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case err == nil:
		c.ok[kind]++
		c.lat = append(c.lat, d)
	case provoked:
		c.prov[kind]++
		c.lat = append(c.lat, d)
	default:
		c.errs[kind]++
		if c.errs[kind] <= 3 {
			log.Printf("soak: %s: %v", kind, err)
		}
	}
}

func main() {
	var c config
	flag.StringVar(&c.dsn, "dsn", "", "go-sql-driver DSN through the proxy")
	flag.StringVar(&c.admin, "admin", "", "admin base URL (http://127.0.0.1:PORT)")
	flag.StringVar(&c.token, "token", "", "admin token")
	flag.StringVar(&c.auditDir, "audit-dir", "", "the daemon's journal directory")
	flag.IntVar(&c.pid, "pid", 0, "the daemon's process id")
	flag.DurationVar(&c.duration, "duration", 10*time.Minute, "how long to run")
	flag.DurationVar(&c.interval, "interval", 5*time.Second, "sampling interval")
	flag.DurationVar(&c.warmup, "warmup", 0, "samples before this are left out of the drift figures (default: a fifth of the run, at most 2m)")
	flag.IntVar(&c.rate, "rate", 200, "statements per second")
	flag.IntVar(&c.workers, "workers", 8, "long-lived client connections")
	flag.DurationVar(&c.approvalEvery, "approval-every", 30*time.Second, "how often a schema change waits for approval")
	flag.DurationVar(&c.churnEvery, "churn-every", 250*time.Millisecond, "how often a connection is opened, used and closed")
	flag.StringVar(&c.csv, "csv", "soak.csv", "samples output")
	flag.StringVar(&c.summary, "summary", "soak-summary.md", "Markdown summary output")
	flag.Parse()
	if c.warmup == 0 {
		c.warmup = min(c.duration/5, 2*time.Minute)
	}
	if err := run(c); err != nil {
		log.Fatalf("soak: %v", err)
	}
}

func run(c config) error {
	db, err := sql.Open("mysql", c.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	// the workers hold one connection each; the journal-lag probe and the
	// held schema change need their own
	db.SetMaxOpenConns(c.workers + 4)
	db.SetMaxIdleConns(c.workers + 4)
	if err := db.Ping(); err != nil {
		return fmt.Errorf("ping through the proxy: %w", err)
	}
	tail, err := startTail(c)
	if err != nil {
		return err
	}
	defer tail.stop()

	cnt := &counters{ok: map[string]int64{}, errs: map[string]int64{}, prov: map[string]int64{}}
	ctx, cancel := context.WithTimeout(context.Background(), c.duration)
	defer cancel()
	var wg sync.WaitGroup

	// The steady mix: one job per tick, run by the long-lived workers.
	jobs := make(chan int, c.workers)
	var skipped atomic.Int64
	for w := 0; w < c.workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			worker(ctx, db, w, jobs, cnt)
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(jobs)
		tick := time.NewTicker(time.Second / time.Duration(c.rate))
		defer tick.Stop()
		for i := 0; ; i++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				select {
				case jobs <- i:
				default:
					skipped.Add(1) // every worker busy: the rate was not kept
				}
			}
		}
	}()
	// Connections churning: open, log in, one statement, close.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(c.churnEvery)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				start := time.Now()
				err := churn(ctx, c.dsn)
				if !ended(ctx) {
					cnt.done("churn", time.Since(start), err, false)
				}
			}
		}
	}()
	// A schema change held for a human, approved through the admin API.
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(c.approvalEvery)
		defer tick.Stop()
		for k := 0; ; k++ {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				start := time.Now()
				err := heldApproval(ctx, c, db, k)
				if !ended(ctx) {
					cnt.done("held-approval", time.Since(start), err, false)
				}
			}
		}
	}()

	// Sampling.
	var samples []sample
	begin := time.Now()
	tick := time.NewTicker(c.interval)
	defer tick.Stop()
	var lastStmts, lastErrs int64
	for k := 0; ; k++ {
		select {
		case <-ctx.Done():
		case <-tick.C:
		}
		if ctx.Err() != nil {
			break
		}
		s := sample{t: time.Since(begin).Seconds()}
		s.rssMB = rssMB(c.pid)
		m, err := scrape(c.admin)
		if err != nil {
			return err
		}
		s.gor, s.fds = m["go_goroutines"], m["process_open_fds"]
		s.lagMS = tail.lag(ctx, db, k)
		if ctx.Err() != nil {
			break // the run ended during the probe: no whole sample
		}
		cnt.mu.Lock()
		lat := cnt.lat
		cnt.lat = nil
		var stmts, errs int64
		for _, v := range cnt.ok {
			stmts += v
		}
		for _, v := range cnt.prov {
			stmts += v
		}
		for _, v := range cnt.errs {
			errs += v
		}
		cnt.mu.Unlock()
		s.p50MS, s.p99MS = pct(lat, 0.50), pct(lat, 0.99)
		s.statements, s.errors = stmts-lastStmts, errs-lastErrs
		lastStmts, lastErrs = stmts, errs
		samples = append(samples, s)
		log.Printf("soak: t=%4.0fs rss=%.1fMB goroutines=%.0f fds=%.0f journal_lag=%.1fms p50=%.2fms p99=%.2fms statements=%d errors=%d",
			s.t, s.rssMB, s.gor, s.fds, s.lagMS, s.p50MS, s.p99MS, s.statements, s.errors)
	}
	cancel()
	wg.Wait()
	if err := writeCSV(c.csv, samples); err != nil {
		return err
	}
	return writeSummary(c, samples, cnt, skipped.Load())
}

func worker(ctx context.Context, db *sql.DB, w int, jobs <-chan int, cnt *counters) {
	conn, err := db.Conn(ctx)
	if err != nil {
		cnt.done("connect", 0, err, false)
		return
	}
	defer conn.Close()
	ps, err := conn.PrepareContext(ctx, "SELECT id, name, total FROM soak.customers WHERE id = ?")
	if err != nil {
		cnt.done("prepare", 0, err, false)
		return
	}
	defer ps.Close()
	for i := range jobs {
		var kind string
		var provoked bool
		start := time.Now()
		id := i%1000 + 1
		switch r := i % 20; {
		case r < 10:
			kind = "point-select"
			var name string
			err = conn.QueryRowContext(ctx, "SELECT name FROM soak.customers WHERE id = "+strconv.Itoa(id)).Scan(&name)
		case r < 13:
			kind = "masked-scan"
			err = maskedScan(ctx, conn, id)
		case r < 16:
			kind = "write"
			if r == 13 {
				_, err = conn.ExecContext(ctx, "INSERT INTO soak.events (worker, v) VALUES (?, ?)", w, i)
			} else {
				_, err = conn.ExecContext(ctx, "UPDATE soak.customers SET total = total + 1 WHERE id = ?", id)
			}
		case r < 19:
			kind = "prepared"
			var a int
			var b string
			var t float64
			err = ps.QueryRowContext(ctx, id).Scan(&a, &b, &t)
		default:
			// refused by the policy: the error is the point
			kind, provoked = "refused-delete", true
			_, err = conn.ExecContext(ctx, "DELETE FROM soak.events")
			if err == nil {
				err = errors.New("DELETE without WHERE was not refused")
				provoked = false
			} else if !isRefusal(err) {
				provoked = false
			}
		}
		if ended(ctx) {
			return
		}
		cnt.done(kind, time.Since(start), err, provoked)
	}
}

func isRefusal(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && me.Number == 1142 && strings.HasPrefix(me.Message, "sqlwarden:")
}

// maskedScan reads a page of customers; every card and email must come back masked.
func maskedScan(ctx context.Context, conn *sql.Conn, from int) error {
	rows, err := conn.QueryContext(ctx, "SELECT id, card, email FROM soak.customers WHERE id >= ? ORDER BY id LIMIT 20", from%900)
	if err != nil {
		return err
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var id int
		var card, email string
		if err := rows.Scan(&id, &card, &email); err != nil {
			return err
		}
		if !strings.HasPrefix(card, "************") || strings.Contains(email, "@") {
			return fmt.Errorf("row %d came back unmasked: %q %q", id, card, email)
		}
		n++
	}
	if err := rows.Err(); err != nil {
		return err
	}
	if n == 0 {
		return errors.New("masked scan returned no rows")
	}
	return nil
}

// ended reports whether the run is over: its context is done or its
// deadline has passed. A dial gives up at the deadline itself ("i/o
// timeout"), a moment before the context says so: that is the run ending,
// not an error of the daemon.
func ended(ctx context.Context) bool {
	if ctx.Err() != nil {
		return true
	}
	d, ok := ctx.Deadline()
	return ok && !time.Now().Before(d)
}

func churn(ctx context.Context, dsn string) error {
	db, err := sql.Open("mysql", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	var v int
	return db.QueryRowContext(ctx, "SELECT 1").Scan(&v)
}

// heldApproval runs a schema change, which the policy holds for approval,
// and approves it through the admin API once it is pending.
func heldApproval(ctx context.Context, c config, db *sql.DB, k int) error {
	stmt := fmt.Sprintf("ALTER TABLE soak.events COMMENT = 'soak-%d'", k)
	done := make(chan error, 1)
	go func() { _, err := db.ExecContext(ctx, stmt); done <- err }()
	cl := &approval.Client{BaseURL: c.admin, Token: c.token}
	for {
		select {
		case err := <-done:
			if err == nil {
				return errors.New("schema change ran without approval")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		pend, err := cl.List(ctx)
		if err != nil {
			return err
		}
		for _, p := range pend {
			if p.SQL == stmt {
				if _, err := cl.Decide(ctx, p.ID, true, approval.DecisionRequest{Reason: "soak", Approver: "soak"}); err != nil {
					return err
				}
				select {
				case err := <-done:
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
}

// tailer follows the journal files as a reader does (audit.Follower, the
// reader behind audit tail and the sinks), polling every millisecond, and
// notes when each marked statement's record became readable.
type tailer struct {
	stopc chan struct{}
	done  chan struct{}
	mu    sync.Mutex
	seen  map[string]time.Time
}

func startTail(c config) (*tailer, error) {
	t := &tailer{seen: map[string]time.Time{}, stopc: make(chan struct{}), done: make(chan struct{})}
	fl := audit.NewFollower(c.auditDir, 0)
	// skip what is there already
	for {
		b, err := fl.Next(4096, 16<<20)
		if err != nil {
			return nil, fmt.Errorf("read journal: %w", err)
		}
		if len(b) == 0 {
			break
		}
	}
	go func() {
		defer close(t.done)
		defer fl.Close()
		for {
			select {
			case <-t.stopc:
				return
			default:
			}
			b, err := fl.Next(4096, 16<<20)
			if err != nil {
				log.Printf("soak: follow journal: %v", err)
				return
			}
			now := time.Now()
			for _, e := range b {
				if !strings.Contains(string(e.Line), "soak-mark-") {
					continue
				}
				var r struct {
					Event, SQL string
				}
				if json.Unmarshal(e.Line, &r) != nil || r.Event != "statement" {
					continue
				}
				t.mu.Lock()
				t.seen[r.SQL] = now
				t.mu.Unlock()
			}
			if len(b) == 0 {
				time.Sleep(time.Millisecond)
			}
		}
	}()
	return t, nil
}

// lag sends a marked statement and returns how long until its record was read from the journal.
func (t *tailer) lag(ctx context.Context, db *sql.DB, k int) float64 {
	q := fmt.Sprintf("SELECT 'soak-mark-%d'", k)
	sent := time.Now()
	var v string
	if err := db.QueryRowContext(ctx, q).Scan(&v); err != nil {
		return math.NaN()
	}
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		t.mu.Lock()
		at, ok := t.seen[q]
		delete(t.seen, q)
		t.mu.Unlock()
		if ok {
			return float64(at.Sub(sent).Microseconds()) / 1000
		}
		time.Sleep(time.Millisecond)
	}
	return math.NaN()
}

func (t *tailer) stop() {
	close(t.stopc)
	<-t.done
}

func scrape(admin string) (map[string]float64, error) {
	resp, err := http.Get(admin + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("scrape: %w", err)
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if ok && (name == "go_goroutines" || name == "process_open_fds") {
			out[name], _ = strconv.ParseFloat(val, 64)
		}
	}
	if len(out) != 2 {
		return nil, errors.New("scrape: /metrics lacks go_goroutines or process_open_fds")
	}
	return out, nil
}

func rssMB(pid int) float64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		log.Fatalf("soak: the daemon is gone: %v", err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			kb, _ := strconv.Atoi(strings.Fields(line)[1])
			return float64(kb) / 1024
		}
	}
	return math.NaN()
}

func pct(d []time.Duration, p float64) float64 {
	if len(d) == 0 {
		return math.NaN()
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	i := int(math.Ceil(p*float64(len(d)))) - 1
	return float64(d[max(i, 0)].Microseconds()) / 1000
}

func writeCSV(path string, samples []sample) error {
	var b strings.Builder
	b.WriteString("t_s,rss_mb,goroutines,open_fds,journal_lag_ms,p50_ms,p99_ms,statements,errors\n")
	for _, s := range samples {
		fmt.Fprintf(&b, "%.1f,%.2f,%.0f,%.0f,%.2f,%.3f,%.3f,%d,%d\n", s.t, s.rssMB, s.gor, s.fds, s.lagMS, s.p50MS, s.p99MS, s.statements, s.errors)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// drift compares the mean of the first and last thirds of the samples after
// warm-up, in percent of the first.
func drift(vals []float64) (first, last, pctChange float64) {
	n := len(vals) / 3
	if n == 0 {
		return math.NaN(), math.NaN(), math.NaN()
	}
	mean := func(v []float64) float64 {
		s, k := 0.0, 0
		for _, x := range v {
			if !math.IsNaN(x) {
				s += x
				k++
			}
		}
		return s / float64(k)
	}
	first, last = mean(vals[:n]), mean(vals[len(vals)-n:])
	return first, last, (last - first) / first * 100
}

func writeSummary(c config, samples []sample, cnt *counters, skipped int64) error {
	var post []sample
	for _, s := range samples {
		if s.t >= c.warmup.Seconds() {
			post = append(post, s)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Run by `make soak` (scripts/soak.sh) on %s: **SOAK_TIME=%s**, a sample every %s, warm-up %s left out of the drift figures;\n",
		time.Now().UTC().Format("2006-01-02T15:04Z"), c.duration, c.interval, c.warmup)
	fmt.Fprintf(&b, "target rate %d statements/s over %d connections, a connection opened and closed every %s, a schema change held for approval every %s.\n\n",
		c.rate, c.workers, c.churnEvery, c.approvalEvery)
	b.WriteString("![soak plot](soak.png)\n\n")
	b.WriteString("| series | min | max | mean of first third | mean of last third | drift |\n|---|---:|---:|---:|---:|---:|\n")
	series := []struct {
		name string
		get  func(sample) float64
	}{
		{"daemon RSS (MB)", func(s sample) float64 { return s.rssMB }},
		{"goroutines", func(s sample) float64 { return s.gor }},
		{"open fds", func(s sample) float64 { return s.fds }},
		{"journal lag (ms)", func(s sample) float64 { return s.lagMS }},
		{"p50 latency (ms)", func(s sample) float64 { return s.p50MS }},
		{"p99 latency (ms)", func(s sample) float64 { return s.p99MS }},
		{"statements per sample", func(s sample) float64 { return float64(s.statements) }},
	}
	for _, sr := range series {
		var v []float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for _, s := range post {
			x := sr.get(s)
			v = append(v, x)
			if !math.IsNaN(x) {
				lo, hi = math.Min(lo, x), math.Max(hi, x)
			}
		}
		f, l, d := drift(v)
		fmt.Fprintf(&b, "| %s | %.2f | %.2f | %.2f | %.2f | %+.1f%% |\n", sr.name, lo, hi, f, l, d)
	}
	cnt.mu.Lock()
	defer cnt.mu.Unlock()
	kinds := map[string]bool{}
	for k := range cnt.ok {
		kinds[k] = true
	}
	for k := range cnt.errs {
		kinds[k] = true
	}
	for k := range cnt.prov {
		kinds[k] = true
	}
	var names []string
	for k := range kinds {
		names = append(names, k)
	}
	sort.Strings(names)
	var unexpected int64
	b.WriteString("\n| workload | succeeded | refused on purpose | unexpected errors |\n|---|---:|---:|---:|\n")
	for _, k := range names {
		fmt.Fprintf(&b, "| %s | %d | %d | %d |\n", k, cnt.ok[k], cnt.prov[k], cnt.errs[k])
		unexpected += cnt.errs[k]
	}
	fmt.Fprintf(&b, "\n%d unexpected errors; %d ticks found every worker busy (the rate was not kept for them).\n", unexpected, skipped)
	if err := os.WriteFile(c.summary, []byte(b.String()), 0o644); err != nil {
		return err
	}
	if unexpected > 0 {
		return fmt.Errorf("%d unexpected errors (summary written)", unexpected)
	}
	return nil
}
