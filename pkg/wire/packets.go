package wire

import (
	"encoding/binary"
	"fmt"
)

// Packet type bytes at the start of a reply payload.
const (
	OKHeader          = 0x00
	EOFHeader         = 0xfe
	ErrHeader         = 0xff
	LocalInfileHeader = 0xfb
)

// Error codes sqlwarden sends. They are MySQL codes a client already knows how
// to treat, so drivers surface them unchanged; the message always starts with
// "sqlwarden:" and says why.
const (
	ErrCodeAccessDenied   uint16 = 1045 // ER_ACCESS_DENIED_ERROR: no verified identity
	ErrCodeBlocked        uint16 = 1142 // ER_TABLEACCESS_DENIED_ERROR: blocked by policy
	ErrCodeAuditFailed    uint16 = 1180 // ER_ERROR_DURING_COMMIT family: audit journal unavailable
	ErrCodeNotSupported   uint16 = 1235 // ER_NOT_SUPPORTED_YET: command refused
	ErrCodeMalformed      uint16 = 1047 // ER_UNKNOWN_COM_ERROR: malformed command
	ErrCodeTooLarge       uint16 = 1153 // ER_NET_PACKET_TOO_LARGE
	ErrCodeOutOfOrder     uint16 = 1156 // ER_NET_PACKETS_OUT_OF_ORDER
	ErrCodeHandshake      uint16 = 1043 // ER_HANDSHAKE_ERROR: a handshake response that cannot be read (SQLSTATE 08S01)
	ErrCodeBackend        uint16 = 2013 // CR_SERVER_LOST: only journaled (the client went away mid-result, the backend during a command without a reply); never sent, libmariadb rejects a client-range code from a server
	ErrCodeApprovalDenied uint16 = 1227 // ER_SPECIFIC_ACCESS_DENIED_ERROR: human said no / timeout
	ErrCodeTLSRequired    uint16 = 3159 // ER_SECURE_TRANSPORT_REQUIRED
	ErrCodeLimit          uint16 = 1226 // ER_USER_LIMIT_REACHED: a per-identity limit (SQLSTATE 42000)
	ErrCodeTimeout        uint16 = 1969 // ER_STATEMENT_TIMEOUT: statement_timeout (SQLSTATE 70100)
	ErrCodeUnknownStmt    uint16 = 1243 // ER_UNKNOWN_STMT_HANDLER: no such prepared statement
	ErrCodeNoCursor       uint16 = 1421 // ER_STMT_HAS_NO_OPEN_CURSOR
)

// Server error codes the proxy reacts to.
const (
	ErrCodeQueryInterrupted  uint16 = 1317 // ER_QUERY_INTERRUPTED: KILL QUERY landed
	ErrCodeConnKilled        uint16 = 1927 // ER_CONNECTION_KILLED (MariaDB, 70100); also sent when the backend is lost mid-statement
	ErrCodeUnknownThread     uint16 = 1094 // ER_NO_SUCH_THREAD: KILL of a thread that is gone
	ErrCodeMySQLQueryTimeout uint16 = 3024 // MySQL ER_QUERY_TIMEOUT (max_execution_time)
)

// ErrPacket builds an ERR payload (protocol 41).
func ErrPacket(code uint16, state, msg string) []byte {
	if state == "" {
		state = "HY000"
	}
	b := make([]byte, 0, 9+len(msg))
	b = append(b, ErrHeader, byte(code), byte(code>>8), '#')
	b = append(b, state[:5]...)
	return append(b, msg...)
}

// EOFPacket builds an EOF payload (protocol 41).
func EOFPacket(warnings, status uint16) []byte {
	return []byte{EOFHeader, byte(warnings), byte(warnings >> 8), byte(status), byte(status >> 8)}
}

// OKPacket builds an OK payload.
func OKPacket(affected, insertID uint64, status, warnings uint16) []byte {
	b := []byte{OKHeader}
	b = AppendLenEncInt(b, affected)
	b = AppendLenEncInt(b, insertID)
	return append(b, byte(status), byte(status>>8), byte(warnings), byte(warnings>>8))
}

// OK is a decoded OK packet (or an EOF-as-OK with CLIENT_DEPRECATE_EOF).
type OK struct {
	AffectedRows uint64
	InsertID     uint64
	Status       uint16
	Warnings     uint16
}

// ParseOK decodes an OK payload.
func ParseOK(p []byte) (OK, error) {
	if len(p) < 1 {
		return OK{}, fmt.Errorf("parse OK: %w: empty", ErrMalformed)
	}
	var ok OK
	pos := 1
	v, _, n, good := LenEncInt(p[pos:])
	if !good {
		return ok, fmt.Errorf("parse OK: %w: affected rows", ErrMalformed)
	}
	ok.AffectedRows = v
	pos += n
	v, _, n, good = LenEncInt(p[pos:])
	if !good {
		return ok, fmt.Errorf("parse OK: %w: insert id", ErrMalformed)
	}
	ok.InsertID = v
	pos += n
	if pos+4 > len(p) {
		return ok, fmt.Errorf("parse OK: %w: status", ErrMalformed)
	}
	ok.Status = binary.LittleEndian.Uint16(p[pos:])
	ok.Warnings = binary.LittleEndian.Uint16(p[pos+2:])
	return ok, nil
}

// PrepareOK is a decoded COM_STMT_PREPARE OK: the statement's id and how
// many parameter and column definitions follow.
type PrepareOK struct {
	StmtID    uint32
	NumCols   uint16
	NumParams uint16
	Warnings  uint16
}

// ParsePrepareOK decodes a COM_STMT_PREPARE OK payload.
func ParsePrepareOK(p []byte) (PrepareOK, error) {
	if len(p) < 12 || p[0] != OKHeader {
		return PrepareOK{}, fmt.Errorf("parse prepare OK: %w", ErrMalformed)
	}
	return PrepareOK{
		StmtID:    binary.LittleEndian.Uint32(p[1:]),
		NumCols:   binary.LittleEndian.Uint16(p[5:]),
		NumParams: binary.LittleEndian.Uint16(p[7:]),
		Warnings:  binary.LittleEndian.Uint16(p[10:]),
	}, nil
}

// PrepareOKPacket builds a COM_STMT_PREPARE OK payload.
func PrepareOKPacket(ok PrepareOK) []byte {
	p := binary.LittleEndian.AppendUint32([]byte{OKHeader}, ok.StmtID)
	p = binary.LittleEndian.AppendUint16(p, ok.NumCols)
	p = binary.LittleEndian.AppendUint16(p, ok.NumParams)
	p = append(p, 0) // filler
	return binary.LittleEndian.AppendUint16(p, ok.Warnings)
}

// ServerError is a decoded ERR packet.
type ServerError struct {
	Code    uint16
	State   string
	Message string
}

func (e *ServerError) Error() string {
	return fmt.Sprintf("ERROR %d (%s): %s", e.Code, e.State, e.Message)
}

// ParseErr decodes an ERR payload.
func ParseErr(p []byte) (*ServerError, error) {
	if len(p) < 3 || p[0] != ErrHeader {
		return nil, fmt.Errorf("parse ERR: %w", ErrMalformed)
	}
	e := &ServerError{Code: binary.LittleEndian.Uint16(p[1:])}
	rest := p[3:]
	if len(rest) >= 6 && rest[0] == '#' {
		e.State = string(rest[1:6])
		rest = rest[6:]
	}
	e.Message = string(rest)
	return e, nil
}

// ParseEOF returns the status flags of an EOF packet (0xfe, len < 9).
func ParseEOF(p []byte) (status uint16, ok bool) {
	if len(p) < 5 || len(p) >= 9 || p[0] != EOFHeader {
		return 0, false
	}
	return binary.LittleEndian.Uint16(p[3:]), true
}

// SetEOFStatus rewrites the status flags of an EOF payload in place; it
// reports false (and changes nothing) when p is not an EOF.
func SetEOFStatus(p []byte, status uint16) bool {
	if _, ok := ParseEOF(p); !ok {
		return false
	}
	binary.LittleEndian.PutUint16(p[3:], status)
	return true
}

// IsEOF reports whether p is an EOF packet (as opposed to a row starting with 0xfe).
func IsEOF(p []byte) bool { return len(p) > 0 && p[0] == EOFHeader && len(p) < 9 }

// ClearWarnings sets the warning count of an EOF or OK payload (an OK with
// either header, as a reply ends under CLIENT_DEPRECATE_EOF) to zero in
// place and reports whether it was not zero; any other payload is left as
// it is.
func ClearWarnings(p []byte) (had bool) {
	if IsEOF(p) {
		if len(p) < 3 {
			return false
		}
		had = p[1] != 0 || p[2] != 0
		p[1], p[2] = 0, 0
		return had
	}
	if len(p) < 1 || (p[0] != OKHeader && p[0] != EOFHeader) {
		return false
	}
	pos, ok := okStatusAt(p)
	if !ok || pos+4 > len(p) {
		return false
	}
	had = p[pos+2] != 0 || p[pos+3] != 0
	p[pos+2], p[pos+3] = 0, 0
	return had
}

// okStatusAt returns where an OK payload's status flags start (the warning
// count follows them), past its affected rows and insert id.
func okStatusAt(p []byte) (int, bool) {
	pos := 1
	for range 2 { // affected rows, insert id
		_, _, n, ok := LenEncInt(p[pos:])
		if !ok {
			return 0, false
		}
		pos += n
	}
	return pos, true
}

// SetOKStatus rewrites the status flags of an OK payload in place; it
// reports false (and changes nothing) when p is not a well-formed OK.
func SetOKStatus(p []byte, status uint16) bool {
	if len(p) < 1 || p[0] != OKHeader {
		return false
	}
	pos, ok := okStatusAt(p)
	if !ok || pos+2 > len(p) {
		return false
	}
	binary.LittleEndian.PutUint16(p[pos:], status)
	return true
}
