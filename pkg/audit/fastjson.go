package audit

import (
	"strconv"
	"time"
	"unicode/utf8"

	"github.com/sqlwarden/sqlwarden/pkg/record"
)

// appendRecordJSON encodes the records the proxy writes on every statement
// (statement, outcome, session.end) without reflection, byte for byte as
// encoding/json would (SetEscapeHTML(false)), with Seq, PrevHash and Hash
// left empty as encodeBody wants them. It reports false for a record with a
// field it does not handle; the caller then uses encoding/json. The two
// encodings are checked against each other by tests and a fuzz target.
func appendRecordJSON(b []byte, r *record.Record) ([]byte, bool) {
	if r.Identity != nil || r.Workload != nil || r.Client != nil || r.Backend != nil ||
		r.Checkpoint != nil || r.Results != nil || r.Approval != nil || r.TS.Year() < 0 || r.TS.Year() > 9999 {
		return b, false
	}
	b = append(b, `{"ts":"`...)
	b = r.TS.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","event":`...)
	b = appendJSONString(b, r.Event)
	b = optString(b, `,"session_id":`, r.SessionID)
	b = append(b, `,"seq":0`...)
	b = optString(b, `,"node":`, r.Node)
	b = optString(b, `,"destination":`, r.Destination)
	b = optString(b, `,"reason":`, r.Reason)
	if r.StatementID != 0 {
		b = append(b, `,"statement_id":`...)
		b = strconv.AppendUint(b, r.StatementID, 10)
	}
	b = optString(b, `,"command":`, r.Command)
	b = optString(b, `,"sql":`, r.SQL)
	b = optString(b, `,"sql_base64":`, r.SQLBase64)
	b = optString(b, `,"digest":`, r.Digest)
	b = optString(b, `,"db":`, r.DB)
	if len(r.Params) > 0 {
		var ok bool
		if b, ok = appendParams(b, r.Params); !ok {
			return b, false
		}
	}
	if c := r.Statement; c != nil {
		b = append(b, `,"classification":{"kind":`...)
		b = appendJSONString(b, c.Kind)
		b = optStrings(b, `,"kinds":`, c.Kinds)
		b = optStrings(b, `,"tables_read":`, c.TablesRead)
		b = optStrings(b, `,"tables_written":`, c.TablesWrite)
		if c.Statements != 0 {
			b = append(b, `,"statements":`...)
			b = strconv.AppendInt(b, int64(c.Statements), 10)
		}
		b = append(b, '}')
	}
	if a := r.Attribution; a != nil {
		b = append(b, `,"attribution":{`...)
		first := true
		for _, f := range []struct {
			key string
			v   *record.Attributed
		}{{`"model":`, a.Model}, {`"tool_call":`, a.ToolCall}, {`"trace_id":`, a.TraceID}} {
			if f.v == nil {
				continue
			}
			if !first {
				b = append(b, ',')
			}
			first = false
			b = append(b, f.key...)
			b = append(b, `{"value":`...)
			b = appendJSONString(b, f.v.Value)
			b = append(b, `,"source":`...)
			b = appendJSONString(b, f.v.Source)
			b = append(b, '}')
		}
		b = append(b, '}')
	}
	b = optString(b, `,"status":`, r.Status)
	if r.Rows != nil {
		b = append(b, `,"rows":`...)
		b = strconv.AppendUint(b, *r.Rows, 10)
	}
	if r.AffectedRows != nil {
		b = append(b, `,"affected_rows":`...)
		b = strconv.AppendUint(b, *r.AffectedRows, 10)
	}
	if e := r.Error; e != nil {
		b = append(b, `,"error":{"code":`...)
		b = strconv.AppendUint(b, uint64(e.Code), 10)
		b = optString(b, `,"state":`, e.State)
		b = append(b, `,"message":`...)
		b = appendJSONString(b, e.Message)
		b = append(b, '}')
	}
	if r.DurationUS != nil {
		b = append(b, `,"duration_us":`...)
		b = strconv.AppendInt(b, *r.DurationUS, 10)
	}
	b = optStrings(b, `,"columns":`, r.Columns)
	if len(r.Masked) > 0 {
		b = append(b, `,"masked":[`...)
		for i, m := range r.Masked {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"column":`...)
			b = appendJSONString(b, m.Column)
			b = append(b, `,"rule":`...)
			b = appendJSONString(b, m.Rule)
			b = append(b, `,"count":`...)
			b = strconv.AppendUint(b, m.Count, 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if p := r.Policy; p != nil {
		b = append(b, `,"policy":{`...)
		if p.Rule != "" {
			b = append(b, `"rule":`...)
			b = appendJSONString(b, p.Rule)
			b = append(b, ',')
		}
		b = append(b, `"action":`...)
		b = appendJSONString(b, string(p.Action))
		b = optString(b, `,"message":`, p.Message)
		b = optString(b, `,"approver":`, p.Approver)
		b = optString(b, `,"reason":`, p.Reason)
		b = optString(b, `,"approval_id":`, p.ApprovalID)
		b = append(b, '}')
	}
	if l := r.Limit; l != nil {
		b = append(b, `,"limit":{"name":`...)
		b = appendJSONString(b, l.Name)
		b = append(b, `,"kind":`...)
		b = appendJSONString(b, l.Kind)
		b = append(b, `,"value":`...)
		switch v := l.Value.(type) {
		case nil:
			b = append(b, "null"...)
		case string:
			b = appendJSONString(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		default:
			return b, false
		}
		b = append(b, '}')
	}
	if r.Truncated {
		b = append(b, `,"truncated":true`...)
	}
	b = optString(b, `,"result_digest":`, r.ResultDigest)
	if r.Statements != nil {
		b = append(b, `,"statements":`...)
		b = strconv.AppendUint(b, *r.Statements, 10)
	}
	return append(b, '}'), true
}

func appendParams(b []byte, ps []record.Param) ([]byte, bool) {
	b = append(b, `,"params":[`...)
	for i, p := range ps {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"type":`...)
		b = appendJSONString(b, p.Type)
		b = append(b, `,"value":`...)
		switch v := p.Value.(type) {
		case nil:
			b = append(b, "null"...)
		case string:
			b = appendJSONString(b, v)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case bool:
			b = strconv.AppendBool(b, v)
		default: // floats and anything else: encoding/json's rules
			return b, false
		}
		if p.Truncated {
			b = append(b, `,"truncated":true`...)
		}
		if p.Size != 0 {
			b = append(b, `,"size":`...)
			b = strconv.AppendInt(b, int64(p.Size), 10)
		}
		b = optString(b, `,"sha256":`, p.SHA256)
		b = append(b, '}')
	}
	return append(b, ']'), true
}

func optString(b []byte, key, v string) []byte {
	if v == "" {
		return b
	}
	b = append(b, key...)
	return appendJSONString(b, v)
}

func optStrings(b []byte, key string, vs []string) []byte {
	if len(vs) == 0 {
		return b
	}
	b = append(b, key...)
	b = append(b, '[')
	for i, v := range vs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, v)
	}
	return append(b, ']')
}

const hexDigits = "0123456789abcdef"

// appendJSONString quotes s as encoding/json does with HTML escaping off:
// control characters escaped, invalid UTF-8 as U+FFFD, U+2028/2029 escaped.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
