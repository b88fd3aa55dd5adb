package rows

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/sqlwarden/sqlwarden/pkg/wire"
)

// collect records what EachText hands over.
type collect struct{ got []string }

func (c *collect) Value(v []byte) { c.got = append(c.got, fmt.Sprintf("%q", v)) }
func (c *collect) Null()          { c.got = append(c.got, "NULL") }

func TestEachText(t *testing.T) {
	long := bytes.Repeat([]byte{'x'}, 300)
	row := wire.AppendLenEncString(nil, []byte("1"))
	row = append(row, 0xfb)
	row = wire.AppendLenEncString(row, nil)
	row = wire.AppendLenEncString(row, long)
	var c collect
	if !EachText(row, &c) {
		t.Fatal("EachText refused a well-formed row")
	}
	want := []string{`"1"`, "NULL", `""`, fmt.Sprintf("%q", long)}
	if fmt.Sprint(c.got) != fmt.Sprint(want) {
		t.Fatalf("values %v, want %v", c.got, want)
	}
	for _, bad := range [][]byte{{0xfc, 1}, {5, 'a'}, {0x01, 'a', 0xff}} {
		c.got = nil
		if EachText(bad, &c) {
			t.Errorf("EachText accepted % x", bad)
		}
	}
	if c.got[0] != `"a"` {
		t.Errorf("values before the fault not handed over: %v", c.got)
	}
	var d counter
	if n := testing.AllocsPerRun(100, func() { EachText(row, &d) }); n != 0 {
		t.Errorf("EachText allocates %v times per row", n)
	}
}

type counter struct{ n int }

func (c *counter) Value([]byte) { c.n++ }
func (c *counter) Null()        { c.n++ }

// FuzzEachText: the values handed over never reach past the row, and
// re-encoded they walk to the same values.
func FuzzEachText(f *testing.F) {
	f.Add([]byte{0x01, '1', 0xfb, 0x00, 0xfc, 0x01, 0x00, 'x'})
	f.Add([]byte{0xfe, 1, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, row []byte) {
		var c collect
		var re []byte
		size := 0
		ok := EachText(row, valuesFunc{func(v []byte) {
			c.Value(v)
			size += len(v)
			re = wire.AppendLenEncString(re, v)
		}, func() { c.Null(); re = append(re, 0xfb) }})
		if size > len(row) {
			t.Fatalf("%d value bytes from a %d-byte row", size, len(row))
		}
		if !ok {
			return
		}
		var again collect
		if !EachText(re, &again) || fmt.Sprint(again.got) != fmt.Sprint(c.got) {
			t.Fatalf("re-encoded % x walks to %v, want %v", re, again.got, c.got)
		}
	})
}

type valuesFunc struct {
	value func([]byte)
	null  func()
}

func (f valuesFunc) Value(v []byte) { f.value(v) }
func (f valuesFunc) Null()          { f.null() }
