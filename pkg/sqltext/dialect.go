package sqltext

import (
	"fmt"
	"strconv"
	"strings"

	tmysql "github.com/pingcap/tidb/pkg/parser/mysql"
)

// Flavor is the kind of server that reads the SQL.
type Flavor uint8

const (
	FlavorUnknown Flavor = iota
	MariaDB
	MySQL
)

func (f Flavor) String() string {
	switch f {
	case MariaDB:
		return "MariaDB"
	case MySQL:
		return "MySQL"
	}
	return "unknown"
}

// Server is the flavour and version of the server a statement goes to.
// Version is in the form of MYSQL_VERSION_ID: 10.11.19 is 101119, 8.0.36
// is 80036; 0 means unknown, and then every versioned comment is refused.
type Server struct {
	Flavor  Flavor
	Version uint32
}

func (s Server) String() string {
	return fmt.Sprintf("%s %d.%d.%d", s.Flavor, s.Version/10000, s.Version/100%100, s.Version%100)
}

// DefaultServer is what `policy test` and tests assume when no server is
// named: the MariaDB release the project is tested against.
var DefaultServer = Server{Flavor: MariaDB, Version: 101100}

// ParseServerVersion reads a handshake's server version string:
// "10.11.19-MariaDB-0+deb12u1-log", "5.5.5-10.11.19-MariaDB" (the prefix
// older MariaDB releases add for old clients), "8.0.36", "8.4.0-commercial".
// A string it cannot read yields a Server with Version 0.
func ParseServerVersion(v string) Server {
	s := Server{Flavor: MySQL}
	if strings.Contains(strings.ToLower(v), "mariadb") {
		s.Flavor = MariaDB
		v = strings.TrimPrefix(v, "5.5.5-")
	}
	end := 0
	for end < len(v) && (v[end] == '.' || v[end] >= '0' && v[end] <= '9') {
		end++
	}
	parts := strings.Split(v[:end], ".")
	if len(parts) < 3 {
		return Server{Flavor: s.Flavor}
	}
	var n [3]uint64
	for i := range n {
		x, err := strconv.ParseUint(parts[i], 10, 32)
		if err != nil || x > 99 {
			return Server{Flavor: s.Flavor}
		}
		n[i] = x
	}
	s.Version = uint32(n[0]*10000 + n[1]*100 + n[2])
	return s
}

// Mode is the set of sql_mode flags that change how a statement is lexed or
// parsed. Every other flag of a known, supported mode changes only how the
// statement executes.
type Mode uint8

const (
	ANSIQuotes         Mode = 1 << iota // "x" is an identifier, not a string
	NoBackslashEscapes                  // \ is an ordinary character in strings
	IgnoreSpace                         // function names may be followed by spaces; they become reserved
	PipesAsConcat                       // || concatenates instead of OR
	HighNotPrecedence                   // NOT binds tighter: NOT a BETWEEN b AND c
)

// LexMode are the flags the lexer itself follows; the others are for the parser.
const LexMode = ANSIQuotes | NoBackslashEscapes

var modeNames = [...]struct {
	name string
	mode Mode
}{
	{"ANSI_QUOTES", ANSIQuotes},
	{"NO_BACKSLASH_ESCAPES", NoBackslashEscapes},
	{"IGNORE_SPACE", IgnoreSpace},
	{"PIPES_AS_CONCAT", PipesAsConcat},
	{"HIGH_NOT_PRECEDENCE", HighNotPrecedence},
}

func (m Mode) String() string {
	var names []string
	for _, n := range modeNames {
		if m&n.mode != 0 {
			names = append(names, n.name)
		}
	}
	return strings.Join(names, ",")
}

// ParserMode is the TiDB parser's sql_mode for these flags.
func (m Mode) ParserMode() tmysql.SQLMode {
	var out tmysql.SQLMode
	if m&ANSIQuotes != 0 {
		out |= tmysql.ModeANSIQuotes
	}
	if m&NoBackslashEscapes != 0 {
		out |= tmysql.ModeNoBackslashEscapes
	}
	if m&IgnoreSpace != 0 {
		out |= tmysql.ModeIgnoreSpace
	}
	if m&PipesAsConcat != 0 {
		out |= tmysql.ModePipesAsConcat
	}
	if m&HighNotPrecedence != 0 {
		out |= tmysql.ModeHighNotPrecedence
	}
	return out
}

// harmlessModes are sql_mode flags (and the combinations MariaDB and MySQL
// report alongside their parts) that do not change how a statement is
// lexed or parsed. ANSI stands for REAL_AS_FLOAT, PIPES_AS_CONCAT,
// ANSI_QUOTES, IGNORE_SPACE (and ONLY_FULL_GROUP_BY on MySQL), which the
// server lists too.
var harmlessModes = map[string]bool{
	"REAL_AS_FLOAT": true, "ONLY_FULL_GROUP_BY": true, "NO_UNSIGNED_SUBTRACTION": true,
	"NO_DIR_IN_CREATE": true, "NO_KEY_OPTIONS": true, "NO_TABLE_OPTIONS": true, "NO_FIELD_OPTIONS": true,
	"NO_AUTO_VALUE_ON_ZERO": true, "STRICT_TRANS_TABLES": true, "STRICT_ALL_TABLES": true,
	"NO_ZERO_IN_DATE": true, "NO_ZERO_DATE": true, "INVALID_DATES": true, "ALLOW_INVALID_DATES": true,
	"ERROR_FOR_DIVISION_BY_ZERO": true, "TRADITIONAL": true, "NO_AUTO_CREATE_USER": true,
	"NO_ENGINE_SUBSTITUTION": true, "PAD_CHAR_TO_FULL_LENGTH": true, "EMPTY_STRING_IS_NULL": true,
	"SIMULTANEOUS_ASSIGNMENT": true, "TIME_ROUND_FRACTIONAL": true, "TIME_TRUNCATE_FRACTIONAL": true,
	"ANSI": true,
}

// ParseSQLMode reads an sql_mode value as the server reports it
// ("STRICT_TRANS_TABLES,ANSI_QUOTES"). Flags the parser cannot follow
// (MariaDB's ORACLE mode, MSSQL, anything unknown) are an error: a session
// in such a mode cannot be judged.
func ParseSQLMode(v string) (Mode, error) {
	var m Mode
	for _, f := range strings.Split(v, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		if f == "" || harmlessModes[f] {
			continue
		}
		found := false
		for _, n := range modeNames {
			if n.name == f {
				m |= n.mode
				found = true
				break
			}
		}
		if !found {
			return m, fmt.Errorf("sql_mode %s is not supported", f)
		}
	}
	return m, nil
}

// Dialect is everything that decides how a server reads a statement's text:
// the server's flavour and version, the session's sql_mode flags and its
// client character set.
type Dialect struct {
	Server
	Mode    Mode
	Charset Charset
}

func (d Dialect) String() string {
	if d.Mode == 0 {
		return d.Server.String()
	}
	return d.Server.String() + " sql_mode=" + d.Mode.String()
}
