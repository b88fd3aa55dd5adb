package proxytest

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
	"github.com/sqlwarden/sqlwarden/pkg/wire/rows"
)

// Column describes one column of a canned result set.
type Column struct {
	Schema, Table string // reported as the column's schema, table and original table
	Name          string
	// Type is a MYSQL_TYPE_* value: VAR_STRING (the default), LONG and
	// LONGLONG are encoded in both protocols.
	Type byte
}

// Result is a canned reply: an error, an OK (no Columns) or one result set.
// Row values are string, int64 or nil (NULL).
type Result struct {
	Columns  []Column
	Rows     [][]any
	Affected uint64
	Err      *wire.ServerError
}

// OK is a Result with no rows.
func OK(affected uint64) *Result { return &Result{Affected: affected} }

// Rows is a one-table result set of string columns.
func Rows(schema, table string, names []string, rows ...[]any) *Result {
	r := &Result{Rows: rows}
	for _, n := range names {
		r.Columns = append(r.Columns, Column{Schema: schema, Table: table, Name: n})
	}
	return r
}

// Error is an ERR reply.
func Error(code uint16, state, msg string) *Result {
	return &Result{Err: &wire.ServerError{Code: code, State: state, Message: msg}}
}

// encoded is a Result framed for the wire, sequence ids from 1.
type encoded struct {
	text, binary []byte
}

// Backend is an in-process MySQL server answering from canned replies. Set
// its fields before it serves; Handle and HandlePrepared may be called at
// any time.
type Backend struct {
	// Version is the greeting's server version ("10.11.19-MariaDB-proxytest").
	Version string
	// SQLMode and Charset answer the login's session query
	// ("STRICT_TRANS_TABLES", "utf8mb4").
	SQLMode, Charset string
	// Default answers a text no Handle matched (nil: OK). It is called with
	// the statement's bytes, valid only during the call, and should return
	// the same *Result for the same answer: encodings are kept per *Result.
	Default func(sql []byte) *Result
	// Record keeps every COM_QUERY and COM_STMT_PREPARE text received (see
	// Received); off for benchmarks, where it would allocate.
	Record bool

	mu       sync.RWMutex
	text     map[string]*encoded
	prepared map[string]*preparedReply
	byResult map[*Result]*encoded
	received []string

	threads  atomic.Uint32
	commands atomic.Int64
	wg       sync.WaitGroup
	connMu   sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

type preparedReply struct {
	numParams int
	res       *Result
	enc       *encoded
}

// NewBackend returns a Backend with MariaDB 10.11's defaults.
func NewBackend() *Backend {
	return &Backend{
		Version: "10.11.19-MariaDB-proxytest", SQLMode: "STRICT_TRANS_TABLES", Charset: "utf8mb4",
		text: map[string]*encoded{}, prepared: map[string]*preparedReply{}, byResult: map[*Result]*encoded{},
		conns: map[net.Conn]struct{}{},
	}
}

// Handle answers the COM_QUERY text sql (exactly) with r.
func (b *Backend) Handle(sql string, r *Result) {
	e := encode(r)
	b.mu.Lock()
	b.text[sql] = e
	b.mu.Unlock()
}

// HandlePrepared lets sql be prepared with numParams parameters; every
// COM_STMT_EXECUTE of it answers r in the binary protocol.
func (b *Backend) HandlePrepared(sql string, numParams int, r *Result) {
	p := &preparedReply{numParams: numParams, res: r, enc: encode(r)}
	b.mu.Lock()
	b.prepared[sql] = p
	b.mu.Unlock()
}

// Received returns the texts of the COM_QUERY and COM_STMT_PREPARE commands
// received so far (with Record set), the login's own queries included.
func (b *Backend) Received() []string {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return append([]string(nil), b.received...)
}

// Commands counts the commands served (login queries included).
func (b *Backend) Commands() int64 { return b.commands.Load() }

// Serve answers connections from ln until it is closed.
func (b *Backend) Serve(ln net.Listener) error {
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		b.Go(c)
	}
}

// Go serves one connection on its own goroutine.
func (b *Backend) Go(c net.Conn) {
	b.connMu.Lock()
	if b.closed {
		b.connMu.Unlock()
		c.Close()
		return
	}
	b.conns[c] = struct{}{}
	b.wg.Add(1)
	b.connMu.Unlock()
	go func() {
		defer b.wg.Done()
		_ = b.serveConn(c)
		c.Close()
		b.connMu.Lock()
		delete(b.conns, c)
		b.connMu.Unlock()
	}()
}

// Dial connects to the backend over net.Pipe; its signature is the proxy's
// Options.Dial.
func (b *Backend) Dial(_ context.Context, _, _ string) (net.Conn, error) {
	client, server := net.Pipe()
	b.Go(server)
	return client, nil
}

// Close ends every connection and waits for their goroutines.
func (b *Backend) Close() {
	b.connMu.Lock()
	b.closed = true
	for c := range b.conns {
		c.Close()
	}
	b.connMu.Unlock()
	b.wg.Wait()
}

// KillAll closes every open connection, as a server restart would.
func (b *Backend) KillAll() {
	b.connMu.Lock()
	for c := range b.conns {
		c.Close()
	}
	b.connMu.Unlock()
}

const loginQuery = "SELECT @@session.sql_mode, @@session.character_set_client"

func (b *Backend) serveConn(nc net.Conn) error {
	c := wire.NewConn(nc, 1<<30)
	thread := b.threads.Add(1)
	hs, err := wire.ServerHandshake(c, &wire.Greeting{
		ServerVersion: b.Version, ConnectionID: thread, Capabilities: wire.ProxyCapabilities,
		Charset: 45, Status: gm.SERVER_STATUS_AUTOCOMMIT,
	})
	if err != nil {
		return err
	}
	if err := wire.AcceptAny(c, hs); err != nil {
		return err
	}
	if err := c.WritePacket(wire.OKPacket(0, 0, gm.SERVER_STATUS_AUTOCOMMIT, 0)); err != nil {
		return err
	}
	if err := c.Flush(); err != nil {
		return err
	}
	login := encode(Rows("", "", []string{"@@session.sql_mode", "@@session.character_set_client"}, []any{b.SQLMode, b.Charset}))
	ok := encode(OK(0))
	stmts := map[uint32]*preparedReply{}
	var nextStmt uint32
	for {
		p, _, err := c.ReadPacket()
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe) {
				return nil
			}
			return err
		}
		if len(p) == 0 {
			return errors.New("empty command")
		}
		b.commands.Add(1)
		var reply []byte
		switch p[0] {
		case gm.COM_QUIT:
			return nil
		case gm.COM_QUERY:
			q := p[1:]
			b.record(q)
			switch {
			case string(q) == loginQuery:
				reply = login.text
			default:
				reply = b.answer(q).text
			}
		case gm.COM_INIT_DB, gm.COM_PING, gm.COM_STMT_RESET, gm.COM_RESET_CONNECTION:
			reply = ok.text
		case gm.COM_STMT_PREPARE:
			q := p[1:]
			b.record(q)
			b.mu.RLock()
			pr := b.prepared[string(q)]
			b.mu.RUnlock()
			if pr == nil {
				reply = encode(Error(1064, "42000", "proxytest: no prepared reply for "+string(q))).text
				break
			}
			nextStmt++
			stmts[nextStmt] = pr
			reply = prepareOK(nextStmt, pr)
		case gm.COM_STMT_EXECUTE:
			id, err := wire.ParseStmtID(p)
			if err != nil {
				return err
			}
			pr := stmts[id]
			if pr == nil {
				reply = encode(Error(1243, "HY000", "Unknown prepared statement handler given to mysqld_stmt_execute")).text
				break
			}
			reply = pr.enc.binary
		case gm.COM_STMT_CLOSE:
			if id, err := wire.ParseStmtID(p); err == nil {
				delete(stmts, id)
			}
			continue
		case gm.COM_STMT_SEND_LONG_DATA:
			continue
		default:
			reply = encode(Error(1047, "08S01", "Unknown command")).text
		}
		if err := c.WriteRaw(reply); err != nil {
			return err
		}
		if err := c.Flush(); err != nil {
			return err
		}
	}
}

func (b *Backend) record(q []byte) {
	if !b.Record {
		return
	}
	b.mu.Lock()
	b.received = append(b.received, string(q))
	b.mu.Unlock()
}

// answer finds the reply to a COM_QUERY text.
func (b *Backend) answer(q []byte) *encoded {
	b.mu.RLock()
	e := b.text[string(q)]
	b.mu.RUnlock()
	if e != nil {
		return e
	}
	var r *Result
	if b.Default != nil {
		r = b.Default(q)
	}
	if r == nil {
		r = okResult // SET, KILL QUERY and anything else
	}
	b.mu.RLock()
	e = b.byResult[r]
	b.mu.RUnlock()
	if e != nil {
		return e
	}
	e = encode(r)
	b.mu.Lock()
	b.byResult[r] = e
	b.mu.Unlock()
	return e
}

var okResult = OK(0)

// prepareOK is the reply to COM_STMT_PREPARE: the statement id, parameter
// and column counts, then their definitions.
func prepareOK(id uint32, pr *preparedReply) []byte {
	var w frame
	cols := len(pr.res.Columns)
	w.packet(wire.PrepareOKPacket(wire.PrepareOK{StmtID: id, NumCols: uint16(cols), NumParams: uint16(pr.numParams)}))
	if pr.numParams > 0 {
		for range pr.numParams {
			w.packet(wire.AppendColumn(nil, "", "", "", "?", "", 63, 0, gm.MYSQL_TYPE_VAR_STRING, 0, 0))
		}
		w.packet(wire.EOFPacket(0, gm.SERVER_STATUS_AUTOCOMMIT))
	}
	if cols > 0 {
		for _, c := range pr.res.Columns {
			w.packet(columnDef(c))
		}
		w.packet(wire.EOFPacket(0, gm.SERVER_STATUS_AUTOCOMMIT))
	}
	return w.b
}

// frame builds a reply's packets, sequence ids from 1.
type frame struct {
	b   []byte
	seq uint8
}

func (f *frame) packet(p []byte) {
	f.seq++
	n := len(p)
	f.b = append(f.b, byte(n), byte(n>>8), byte(n>>16), f.seq)
	f.b = append(f.b, p...)
}

func columnDef(c Column) []byte {
	typ := c.Type
	if typ == 0 {
		typ = gm.MYSQL_TYPE_VAR_STRING
	}
	charset, length, flags := uint16(45), uint32(1020), uint16(0)
	if typ != gm.MYSQL_TYPE_VAR_STRING {
		charset, length, flags = 63, 20, gm.NUM_FLAG
	}
	return wire.AppendColumn(nil, c.Schema, c.Table, c.Table, c.Name, c.Name, charset, length, typ, flags, 0)
}

// encode frames r in the text and the binary protocol.
func encode(r *Result) *encoded {
	if r.Err != nil {
		var f frame
		f.packet(wire.ErrPacket(r.Err.Code, r.Err.State, r.Err.Message))
		return &encoded{text: f.b, binary: f.b}
	}
	if len(r.Columns) == 0 {
		var f frame
		f.packet(wire.OKPacket(r.Affected, 0, gm.SERVER_STATUS_AUTOCOMMIT, 0))
		return &encoded{text: f.b, binary: f.b}
	}
	return &encoded{text: encodeRows(r, false), binary: encodeRows(r, true)}
}

func encodeRows(r *Result, binaryRows bool) []byte {
	var f frame
	f.packet(wire.AppendLenEncInt(nil, uint64(len(r.Columns))))
	for _, c := range r.Columns {
		f.packet(columnDef(c))
	}
	f.packet(wire.EOFPacket(0, gm.SERVER_STATUS_AUTOCOMMIT))
	for _, row := range r.Rows {
		if binaryRows {
			f.packet(binaryRow(r.Columns, row))
		} else {
			f.packet(textRow(row))
		}
	}
	f.packet(wire.EOFPacket(0, gm.SERVER_STATUS_AUTOCOMMIT))
	return f.b
}

func textRow(row []any) []byte {
	var p []byte
	for _, v := range row {
		switch v := v.(type) {
		case nil:
			p = append(p, 0xfb)
		case int64:
			p = wire.AppendLenEncString(p, strconv.AppendInt(nil, v, 10))
		case string:
			p = wire.AppendLenEncString(p, []byte(v))
		default:
			panic(fmt.Sprintf("proxytest: row value of type %T", v))
		}
	}
	return p
}

func binaryRow(cols []Column, row []any) []byte {
	p := []byte{0}
	nulls := make([]byte, rows.BitmapLen(len(cols)))
	p = append(p, nulls...)
	for i, v := range row {
		typ := cols[i].Type
		switch v := v.(type) {
		case nil:
			p[1+(i+2)/8] |= 1 << ((i + 2) % 8)
		case int64:
			switch typ {
			case gm.MYSQL_TYPE_LONG:
				p = binary.LittleEndian.AppendUint32(p, uint32(v))
			case gm.MYSQL_TYPE_LONGLONG:
				p = binary.LittleEndian.AppendUint64(p, uint64(v))
			default:
				p = wire.AppendLenEncString(p, strconv.AppendInt(nil, v, 10))
			}
		case string:
			p = wire.AppendLenEncString(p, []byte(v))
		default:
			panic(fmt.Sprintf("proxytest: row value of type %T", v))
		}
	}
	return p
}
