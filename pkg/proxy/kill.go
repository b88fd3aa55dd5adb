package proxy

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/sqlwarden/sqlwarden/pkg/statement"
)

// KILL through the proxy. A client may name a connection two ways: by the
// id the proxy's greeting gave it (mysql_thread_id(): what the mariadb CLI's
// Ctrl-C and Connector/J's Statement.cancel() kill) or by CONNECTION_ID(),
// the backend's own thread id. Greeting ids start at proxyConnIDBase so the
// two never collide; a greeting id is translated to its backend thread.
// Either way the target must be a connection of the same identity on the
// same backend, since the KILL runs on this session's backend.

// proxyConnIDBase is the first greeting connection id (backend thread ids
// stay far below it).
const proxyConnIDBase = 1 << 30

type threadKey struct {
	backend string
	id      uint32
}

// resolveKill returns the backend thread id a KILL of target means, or why
// it is refused.
func (s *session) resolveKill(target uint64) (uint32, string) {
	refuse := fmt.Sprintf("sqlwarden: blocked: KILL %d targets a connection that does not belong to identity %s", target, s.identity.Name)
	if target == 0 || target > 0xffffffff {
		return 0, refuse
	}
	key := threadKey{s.beName, uint32(target)}
	if target >= proxyConnIDBase {
		k, ok := s.srv.conns.Load(uint32(target))
		if !ok {
			return 0, refuse
		}
		key = k.(threadKey)
	}
	if key.backend != s.beName {
		return 0, refuse
	}
	owner, ok := s.srv.threads.Load(key)
	if !ok || owner.(string) != s.identity.Name {
		return 0, refuse
	}
	return key.id, ""
}

// killSQL matches the KILL forms the proxy can check:
// KILL [HARD|SOFT] [CONNECTION|QUERY] id, after optional comments.
var killSQL = regexp.MustCompile(`(?is)^\s*(?:/\*.*?\*/\s*)*KILL\s+(?:(?:HARD|SOFT)\s+)?(?:(?:CONNECTION|QUERY)\s+)?(\d+)\s*;?\s*$`)

// mentionsKill finds the KILL keyword outside the simplest cases, for SQL the
// parser could not read (MariaDB's KILL USER, KILL QUERY ID, HARD/SOFT).
var mentionsKill = regexp.MustCompile(`(?i)\bKILL\b`)

// checkKillSQL vets a COM_QUERY that kills: only one KILL, of a connection
// of the same identity. It returns the SQL to forward when a greeting id had
// to be translated ("" when the SQL goes as it is), or why it is refused.
func (s *session) checkKillSQL(sql string, st *statement.Statement) (string, string) {
	kills := 0
	if st.Classification != nil {
		if len(st.Classification.Kinds) > 0 {
			for _, k := range st.Classification.Kinds {
				if k == "KILL" {
					kills++
				}
			}
		} else if st.Classification.Kind == "KILL" {
			kills = 1
		}
	}
	if st.KillTarget == 0 && kills == 0 {
		if !st.Parsed && mentionsKill.MatchString(sql) {
			return "", "sqlwarden: blocked: a KILL the proxy cannot check (KILL USER, KILL QUERY ID, ...); use KILL [CONNECTION|QUERY] <id> of your own connection"
		}
		return "", ""
	}
	if kills > 1 || (st.Classification != nil && st.Classification.Statements > 1) {
		return "", "sqlwarden: blocked: KILL must be the only statement in a query"
	}
	if st.KillTarget == 0 {
		// A KILL in a PREPARE's text: the id in it cannot be translated.
		return "", "sqlwarden: blocked: a prepared KILL cannot be checked; use KILL [CONNECTION|QUERY] <id> of your own connection"
	}
	thread, msg := s.resolveKill(st.KillTarget)
	if msg != "" {
		return "", msg
	}
	if uint64(thread) == st.KillTarget {
		return "", ""
	}
	m := killSQL.FindStringSubmatchIndex(sql)
	if m == nil || sql[m[2]:m[3]] != strconv.FormatUint(st.KillTarget, 10) {
		return "", fmt.Sprintf("sqlwarden: blocked: cannot translate KILL %d; use COM_PROCESS_KILL or KILL <CONNECTION_ID()>", st.KillTarget)
	}
	return sql[:m[2]] + strconv.FormatUint(uint64(thread), 10) + sql[m[3]:], ""
}
