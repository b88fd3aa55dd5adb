package wire

import (
	"encoding/binary"
	"fmt"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// Client command decoding. Every field of a command payload the proxy reads
// is read here, bounds-checked, so the proxy never indexes a payload itself.
// Payloads include the command byte; returned slices alias them.

// Command is a client command payload, command byte first.
type Command []byte

// Code is the command byte; 0xff (not a command) for an empty payload.
func (c Command) Code() byte {
	if len(c) == 0 {
		return 0xff
	}
	return c[0]
}

// Name is the audit name of the command.
func (c Command) Name() string { return CommandName(c.Code()) }

// Arg is what follows the command byte: the SQL of COM_QUERY and
// COM_STMT_PREPARE, the database of COM_INIT_DB.
func (c Command) Arg() []byte {
	if len(c) == 0 {
		return nil
	}
	return c[1:]
}

// CommandName is the audit name of a command byte.
func CommandName(b byte) string {
	if int(b) < len(commandNames) && commandNames[b] != "" {
		return commandNames[b]
	}
	return fmt.Sprintf("COM_UNKNOWN_0x%02x", b)
}

var commandNames = [...]string{
	gm.COM_SLEEP: "COM_SLEEP", gm.COM_QUIT: "COM_QUIT", gm.COM_INIT_DB: "COM_INIT_DB", gm.COM_QUERY: "COM_QUERY",
	gm.COM_FIELD_LIST: "COM_FIELD_LIST", gm.COM_CREATE_DB: "COM_CREATE_DB", gm.COM_DROP_DB: "COM_DROP_DB",
	gm.COM_REFRESH: "COM_REFRESH", gm.COM_SHUTDOWN: "COM_SHUTDOWN", gm.COM_STATISTICS: "COM_STATISTICS",
	gm.COM_PROCESS_INFO: "COM_PROCESS_INFO", gm.COM_CONNECT: "COM_CONNECT", gm.COM_PROCESS_KILL: "COM_PROCESS_KILL",
	gm.COM_DEBUG: "COM_DEBUG", gm.COM_PING: "COM_PING", gm.COM_TIME: "COM_TIME", gm.COM_DELAYED_INSERT: "COM_DELAYED_INSERT",
	gm.COM_CHANGE_USER: "COM_CHANGE_USER", gm.COM_BINLOG_DUMP: "COM_BINLOG_DUMP", gm.COM_TABLE_DUMP: "COM_TABLE_DUMP",
	gm.COM_CONNECT_OUT: "COM_CONNECT_OUT", gm.COM_REGISTER_SLAVE: "COM_REGISTER_SLAVE", gm.COM_STMT_PREPARE: "COM_STMT_PREPARE",
	gm.COM_STMT_EXECUTE: "COM_STMT_EXECUTE", gm.COM_STMT_SEND_LONG_DATA: "COM_STMT_SEND_LONG_DATA",
	gm.COM_STMT_CLOSE: "COM_STMT_CLOSE", gm.COM_STMT_RESET: "COM_STMT_RESET", gm.COM_SET_OPTION: "COM_SET_OPTION",
	gm.COM_STMT_FETCH: "COM_STMT_FETCH", gm.COM_DAEMON: "COM_DAEMON", gm.COM_BINLOG_DUMP_GTID: "COM_BINLOG_DUMP_GTID",
	gm.COM_RESET_CONNECTION: "COM_RESET_CONNECTION",
}

// short is the error for a command too short for its fixed fields.
func short(p []byte) error {
	return fmt.Errorf("%w: short %s", ErrMalformed, Command(p).Name())
}

// ParseStmtID reads the statement id of a COM_STMT_EXECUTE, _CLOSE, _RESET,
// _FETCH or _SEND_LONG_DATA payload.
func ParseStmtID(p []byte) (uint32, error) {
	if len(p) < 5 {
		return 0, short(p)
	}
	return binary.LittleEndian.Uint32(p[1:]), nil
}

// SetStmtID rewrites the statement id of such a payload in place; it
// reports false (and changes nothing) when p is too short to hold one.
func SetStmtID(p []byte, id uint32) bool {
	if len(p) < 5 {
		return false
	}
	binary.LittleEndian.PutUint32(p[1:], id)
	return true
}

// StmtCommand encodes a command whose only field is a statement id
// (COM_STMT_RESET, COM_STMT_CLOSE).
func StmtCommand(cmd byte, id uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{cmd}, id)
}

// ParseKill reads the connection id of a COM_PROCESS_KILL payload.
func ParseKill(p []byte) (uint32, error) {
	if len(p) < 5 {
		return 0, short(p)
	}
	return binary.LittleEndian.Uint32(p[1:]), nil
}

// KillCommand encodes COM_PROCESS_KILL of connection thread.
func KillCommand(thread uint32) []byte {
	return binary.LittleEndian.AppendUint32([]byte{gm.COM_PROCESS_KILL}, thread)
}

// LongData is a decoded COM_STMT_SEND_LONG_DATA.
type LongData struct {
	StmtID uint32
	Param  uint16
	Data   []byte // aliases the payload
}

// ParseLongData decodes a COM_STMT_SEND_LONG_DATA payload.
func ParseLongData(p []byte) (LongData, error) {
	if len(p) < 7 {
		return LongData{}, short(p)
	}
	return LongData{StmtID: binary.LittleEndian.Uint32(p[1:]), Param: binary.LittleEndian.Uint16(p[5:]), Data: p[7:]}, nil
}

// ParseFieldList reads the table of a COM_FIELD_LIST payload (what precedes
// the NUL before the column wildcard; all of it when there is no NUL).
func ParseFieldList(p []byte) (table []byte) {
	arg := Command(p).Arg()
	if s, _, ok := cstring(arg); ok {
		return s
	}
	return arg
}
