package proxy

import (
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// engineTTL is how long what information_schema said about a table is
// remembered.
const engineTTL = 5 * time.Second

// tableInfo is what information_schema.TABLES says about a table.
type tableInfo struct {
	found  bool   // false: no such base table or view (a temporary table, or none)
	engine string // InnoDB, MyISAM, ...
	view   bool
	// cascades: the table is the parent of a foreign key whose ON DELETE or
	// ON UPDATE changes rows of another table (CASCADE, SET NULL, SET
	// DEFAULT), rows the server does not count as affected.
	cascades bool
	// triggers: the table has triggers, whose writes the server does not
	// count as the statement's affected rows either.
	triggers bool
	// definition is a view's SELECT as the server stores it ("" when the
	// daemon's account may not see it).
	definition string
}

// transactional reports a storage engine whose writes a ROLLBACK undoes.
func transactional(engine string) bool {
	switch strings.ToLower(engine) {
	case "innodb", "xtradb", "rocksdb", "tokudb":
		return true
	}
	return false
}

// tableLookup asks information_schema about a table: its engine, whether
// it is a view (and its definition), whether it is the parent of a foreign
// key that changes other tables' rows, whether it has triggers.
const tableLookup = "SELECT t.ENGINE, t.TABLE_TYPE, v.VIEW_DEFINITION, " +
	"EXISTS (SELECT 1 FROM information_schema.REFERENTIAL_CONSTRAINTS f WHERE f.UNIQUE_CONSTRAINT_SCHEMA = t.TABLE_SCHEMA " +
	"AND f.REFERENCED_TABLE_NAME = t.TABLE_NAME AND (f.DELETE_RULE NOT IN ('RESTRICT', 'NO ACTION') " +
	"OR f.UPDATE_RULE NOT IN ('RESTRICT', 'NO ACTION'))), " +
	"EXISTS (SELECT 1 FROM information_schema.TRIGGERS g WHERE g.EVENT_OBJECT_SCHEMA = t.TABLE_SCHEMA " +
	"AND g.EVENT_OBJECT_TABLE = t.TABLE_NAME) " +
	"FROM information_schema.TABLES t " +
	"LEFT JOIN information_schema.VIEWS v ON v.TABLE_SCHEMA = t.TABLE_SCHEMA AND v.TABLE_NAME = t.TABLE_NAME " +
	"WHERE t.TABLE_SCHEMA = %s AND t.TABLE_NAME = %s"

// tableLookupQuery is tableLookup for one table, the names as hex string
// literals (read alike whatever the control session's sql_mode).
func tableLookupQuery(schema, table string) string {
	lit := func(s string) string {
		if s == "" {
			return "''"
		}
		return "_utf8mb4 0x" + hex.EncodeToString([]byte(s))
	}
	return fmt.Sprintf(tableLookup, lit(schema), lit(table))
}

type tableKey struct{ backend, addr, schema, table string }

type tableEntry struct {
	info tableInfo
	at   time.Time
}

// tables caches table metadata looked up through the daemon's control
// connections (never a session's own: its client did not send the query).
type tables struct {
	mu    sync.Mutex
	cache map[tableKey]tableEntry
}

// tableInfo looks a table up on the backend (be, addr), through the cache.
func (s *Server) tableInfo(be *Backend, addr, schema, table string) (tableInfo, error) {
	key := tableKey{be.Name, addr, schema, table}
	now := s.opts.Now()
	s.tables.mu.Lock()
	if ent, ok := s.tables.cache[key]; ok && now.Sub(ent.at) < engineTTL {
		s.tables.mu.Unlock()
		return ent.info, nil
	}
	s.tables.mu.Unlock()

	info, err := s.lookupTable(be, addr, schema, table)
	if err != nil {
		return info, err
	}
	s.tables.mu.Lock()
	if s.tables.cache == nil || len(s.tables.cache) > 4096 {
		s.tables.cache = map[tableKey]tableEntry{}
	}
	s.tables.cache[key] = tableEntry{info: info, at: now}
	s.tables.mu.Unlock()
	return info, nil
}

func (s *Server) lookupTable(be *Backend, addr, schema, table string) (tableInfo, error) {
	c := s.control(be, addr)
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lastUsed = time.Now()
	var info tableInfo
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if c.conn == nil {
			if c.conn, err = s.dialControl(be, addr); err != nil {
				return info, fmt.Errorf("open control connection to %s: %w", addr, err)
			}
		}
		rows, qerr := c.query(tableLookupQuery(schema, table))
		if qerr == nil {
			if len(rows) == 0 {
				return info, nil
			}
			r := rows[0]
			if len(r) != 5 {
				return info, fmt.Errorf("look up table %s.%s: %d columns", schema, table, len(r))
			}
			info.found = true
			info.engine = r[0]
			if info.view = r[1] == "VIEW"; info.view {
				info.definition = r[2]
			}
			info.cascades = r[3] != "0"
			info.triggers = r[4] != "0"
			return info, nil
		}
		err = qerr
		var se *wire.ServerError
		if errors.As(qerr, &se) {
			break
		}
		c.close() // a broken connection: once more on a fresh one
	}
	return info, fmt.Errorf("look up table %s.%s: %w", schema, table, err)
}
