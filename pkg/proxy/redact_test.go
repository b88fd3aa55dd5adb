package proxy

import (
	"strings"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

func TestRedactErr(t *testing.T) {
	for _, tc := range []struct{ msg, want string }{
		{"Duplicate entry '4111111111111111' for key 'PRIMARY'", "Duplicate entry '***' for key '***'"},
		{`Truncated incorrect DECIMAL value: 'ann@example.com'`, "Truncated incorrect DECIMAL value: '***'"},
		{`Incorrect value "it''s \"x\"" here`, `Incorrect value '***' here`},
		{"Table 'shop.nope' doesn't exist", "Table '***' doesn't exist"},
	} {
		pl := wire.ErrPacket(1062, "23000", tc.msg)
		tr := &wire.Tracker{}
		tr.Start(wire.ReplyResult, false)
		if _, err := tr.Feed(pl); err != nil {
			t.Fatal(err)
		}
		out := redactErr(pl, tr)
		e, err := wire.ParseErr(out)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(e.Message, tc.want) || e.Code != 1062 || e.State != "23000" || tr.Err.Message != e.Message {
			t.Errorf("%q → %+v, want prefix %q", tc.msg, e, tc.want)
		}
	}
	// Nothing quoted: the original packet, untouched.
	pl := wire.ErrPacket(1146, "42S02", "no quotes here")
	tr := &wire.Tracker{}
	tr.Start(wire.ReplyResult, false)
	tr.Feed(pl)
	if out := redactErr(pl, tr); string(out) != string(pl) {
		t.Errorf("unquoted message rewritten: %q", out)
	}
}
