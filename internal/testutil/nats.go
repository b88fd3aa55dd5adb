package testutil

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// NATSServer is a real nats-server with JetStream that a test started on a
// free loopback port, with its store in a temporary directory. Never the
// machine's own NATS.
type NATSServer struct {
	Port int
	Dir  string
	bin  string
	t    testing.TB
	cmd  *exec.Cmd
	done chan struct{}
}

// StartNATS starts nats-server -js -sd TMP -p PORT on 127.0.0.1; it is
// stopped at cleanup.
func StartNATS(t testing.TB) *NATSServer {
	t.Helper()
	bin := RequireTool(t, "nats-server", "/usr/sbin/nats-server")
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	s := &NATSServer{Port: port, Dir: t.TempDir(), bin: bin, t: t}
	s.Start()
	t.Cleanup(s.Stop)
	return s
}

// URL is the server's client URL.
func (s *NATSServer) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.Port) }

// Start (re)starts the server on the same port and store.
func (s *NATSServer) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "-js", "-a", "127.0.0.1", "-p", strconv.Itoa(s.Port), "-sd", s.Dir)
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	s.done = make(chan struct{})
	go func(cmd *exec.Cmd, done chan struct{}) { _ = cmd.Wait(); close(done) }(s.cmd, s.done)
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			s.t.Fatalf("nats-server exited at start: %v", s.cmd.ProcessState)
		default:
		}
		if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", s.Port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatal("nats-server did not start within 10s")
}

// Stop stops the server (SIGINT, then SIGKILL after 5 s) and waits.
func (s *NATSServer) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	_ = s.cmd.Process.Signal(os.Interrupt)
	select {
	case <-s.done:
	case <-time.After(5 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}
