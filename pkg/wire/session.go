package wire

import (
	"encoding/binary"
	"fmt"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// Session state-change entry types (CLIENT_SESSION_TRACK).
const (
	TrackSystemVariables   = 0x00
	TrackSchema            = 0x01
	TrackStateChange       = 0x02
	TrackGTIDs             = 0x03
	TrackTxCharacteristics = 0x04
	TrackTxState           = 0x05
)

// ServerSessionStateChanged is the status flag of an OK packet that carries
// session state-change information.
const ServerSessionStateChanged = gm.SERVER_SESSION_STATE_CHANGED

// StripSessionTrack turns an OK payload from a connection that negotiated
// CLIENT_SESSION_TRACK into the form a client without it expects — the
// state-change block cut off and its status flag cleared, in place — and
// returns it with the state-change block (nil if none). The info text is
// length-prefixed either way. An OK without the flag is returned as it is:
// the common OK costs a flag test.
func StripSessionTrack(p []byte) (out, state []byte, err error) {
	bad := func(what string) ([]byte, []byte, error) {
		return nil, nil, fmt.Errorf("parse OK: %w: %s", ErrMalformed, what)
	}
	if len(p) < 1 || p[0] != OKHeader {
		return bad("not an OK")
	}
	pos := 1
	for range 2 { // affected rows, insert id
		_, _, n, ok := LenEncInt(p[pos:])
		if !ok {
			return bad("lengths")
		}
		pos += n
	}
	if pos+4 > len(p) {
		return bad("status")
	}
	statusAt := pos
	status := binary.LittleEndian.Uint16(p[statusAt:])
	if status&ServerSessionStateChanged == 0 {
		return p, nil, nil
	}
	pos += 4
	info, _, n, ok := LenEncString(p[pos:])
	if !ok {
		return bad("info")
	}
	st, _, _, ok := LenEncString(p[pos+n:])
	if !ok {
		return bad("session state")
	}
	binary.LittleEndian.PutUint16(p[statusAt:], status&^ServerSessionStateChanged)
	if len(info) == 0 {
		// Without session tracking an empty info is not sent at all.
		return p[:pos], st, nil
	}
	return p[:pos+n], st, nil
}

// SessionSysVars calls fn for every system variable a state-change block
// reports, in order; other entries are skipped.
func SessionSysVars(state []byte, fn func(name, value []byte)) error {
	for len(state) > 0 {
		typ := state[0]
		data, _, n, ok := LenEncString(state[1:])
		if !ok {
			return fmt.Errorf("parse session state: %w: entry", ErrMalformed)
		}
		state = state[1+n:]
		if typ != TrackSystemVariables {
			continue
		}
		name, _, n, ok := LenEncString(data)
		if !ok {
			return fmt.Errorf("parse session state: %w: variable name", ErrMalformed)
		}
		value, _, _, ok := LenEncString(data[n:])
		if !ok {
			return fmt.Errorf("parse session state: %w: variable value", ErrMalformed)
		}
		fn(name, value)
	}
	return nil
}

// SimpleQuery runs q on a connection between commands and returns the text
// rows of its one result set (NULL as ""), or nothing for an OK. The
// server's ERR is a *ServerError. For the proxy's own statements on a
// backend (session setup), never for a client's.
func SimpleQuery(c *Conn, q string) ([][]string, error) {
	c.Seq = 0
	if err := c.WritePacket(append([]byte{gm.COM_QUERY}, q...)); err != nil {
		return nil, err
	}
	if err := c.Flush(); err != nil {
		return nil, err
	}
	var rows [][]string
	var t Tracker
	t.Start(ReplyResult, false)
	for !t.Done() {
		p, _, err := c.ReadPacket()
		if err != nil {
			return nil, err
		}
		k, err := t.Feed(p)
		if err != nil {
			return nil, err
		}
		if k == PktRow {
			var row []string
			for len(p) > 0 {
				v, _, n, ok := LenEncString(p)
				if !ok {
					return nil, fmt.Errorf("read row: %w", ErrMalformed)
				}
				row = append(row, string(v))
				p = p[n:]
			}
			rows = append(rows, row)
		}
	}
	if t.Err != nil {
		return nil, t.Err
	}
	return rows, nil
}
