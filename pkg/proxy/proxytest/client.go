package proxytest

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/go-mysql-org/go-mysql/client"
	gm "github.com/go-mysql-org/go-mysql/mysql"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// Client is a connection logged in through the proxy by go-mysql's client.
// Conn is that client, for tests that want a real driver's view; Query,
// Prepare and Execute send commands on the same connection by hand and read
// the reply to its end without keeping it, allocating nothing once warm
// (an ERR reply allocates its error). Do not interleave the two on one
// statement.
type Client struct {
	Conn *client.Conn
	raw  *wire.Conn
	cmd  []byte

	// Rows and Status are from the last reply read by hand.
	Rows   int
	Status uint16
}

// Connect logs in as user through dial (a Listener's Dial, or a TCP dialer).
func Connect(ctx context.Context, dial client.Dialer, user, password, db string) (*Client, error) {
	c, err := client.ConnectWithDialer(ctx, "tcp", "proxytest", user, password, db, dial)
	if err != nil {
		return nil, fmt.Errorf("connect through the proxy: %w", err)
	}
	return &Client{Conn: c, raw: wire.NewConn(c.Conn.Conn, 1<<30)}, nil
}

// Close sends COM_QUIT and closes the connection.
func (c *Client) Close() error { return c.Conn.Close() }

// Query sends sql as a COM_QUERY and reads the reply.
func (c *Client) Query(sql string) error {
	c.cmd = append(append(c.cmd[:0], gm.COM_QUERY), sql...)
	return c.Roundtrip(c.cmd, false)
}

// Prepare sends COM_STMT_PREPARE and returns the statement id.
func (c *Client) Prepare(sql string) (uint32, error) {
	c.cmd = append(append(c.cmd[:0], gm.COM_STMT_PREPARE), sql...)
	if err := c.send(c.cmd); err != nil {
		return 0, err
	}
	p, err := c.read()
	if err != nil {
		return 0, err
	}
	if p[0] == wire.ErrHeader {
		return 0, errReply(p)
	}
	pok, err := wire.ParsePrepareOK(p)
	if err != nil {
		return 0, err
	}
	id, cols, params := pok.StmtID, pok.NumCols, pok.NumParams
	for _, n := range []uint16{params, cols} {
		if n == 0 {
			continue
		}
		for i := 0; i <= int(n); i++ { // the definitions and their EOF
			if _, err := c.read(); err != nil {
				return 0, err
			}
		}
	}
	return id, nil
}

// Execute runs a prepared statement with string parameters (new-params-bound
// every time) and reads its binary result.
func (c *Client) Execute(id uint32, params ...[]byte) error {
	b := append(c.cmd[:0], gm.COM_STMT_EXECUTE)
	b = binary.LittleEndian.AppendUint32(b, id)
	b = append(b, 0, 1, 0, 0, 0) // no cursor, one iteration
	if len(params) > 0 {
		for range (len(params) + 7) / 8 {
			b = append(b, 0) // no NULLs
		}
		b = append(b, 1)
		for range params {
			b = append(b, gm.MYSQL_TYPE_VAR_STRING, 0)
		}
		for _, p := range params {
			b = wire.AppendLenEncInt(b, uint64(len(p)))
			b = append(b, p...)
		}
	}
	c.cmd = b
	return c.Roundtrip(b, true)
}

// Roundtrip sends payload (a command byte and its arguments) and reads a
// result reply (OK, ERR or result sets) to its end.
func (c *Client) Roundtrip(payload []byte, binaryRows bool) error {
	if err := c.send(payload); err != nil {
		return err
	}
	c.Rows = 0
	for {
		p, err := c.read()
		if err != nil {
			return err
		}
		switch p[0] {
		case wire.OKHeader:
			ok, err := wire.ParseOK(p)
			if err != nil {
				return err
			}
			c.Status = ok.Status
			if ok.Status&gm.SERVER_MORE_RESULTS_EXISTS == 0 {
				return nil
			}
			continue
		case wire.ErrHeader:
			return errReply(p)
		}
		n, _, _, ok := wire.LenEncInt(p)
		if !ok || n == 0 {
			return fmt.Errorf("column count: %w", wire.ErrMalformed)
		}
		for i := uint64(0); i <= n; i++ { // definitions and their EOF
			if _, err := c.read(); err != nil {
				return err
			}
		}
		more := false
		for {
			p, err := c.read()
			if err != nil {
				return err
			}
			if p[0] == wire.ErrHeader {
				return errReply(p)
			}
			if status, ok := wire.ParseEOF(p); ok {
				c.Status = status
				more = status&gm.SERVER_MORE_RESULTS_EXISTS != 0
				break
			}
			c.Rows++
		}
		if !more {
			return nil
		}
	}
}

// Send sends payload (a command byte and its arguments) and reads nothing:
// for commands the server never answers (COM_STMT_CLOSE,
// COM_STMT_SEND_LONG_DATA).
func (c *Client) Send(payload []byte) error { return c.send(payload) }

func (c *Client) send(payload []byte) error {
	c.raw.Seq = 0
	if err := c.raw.WritePacket(payload); err != nil {
		return err
	}
	return c.raw.Flush()
}

func (c *Client) read() ([]byte, error) {
	p, _, err := c.raw.ReadPacket()
	if err != nil {
		return nil, err
	}
	if len(p) == 0 {
		return nil, fmt.Errorf("empty reply packet: %w", wire.ErrMalformed)
	}
	return p, nil
}

func errReply(p []byte) error {
	e, err := wire.ParseErr(p)
	if err != nil {
		return err
	}
	return e
}
