package wire

import (
	"bytes"
	"errors"
	"testing"

	gm "github.com/go-mysql-org/go-mysql/mysql"
)

// FuzzParseColumn: no panics; errors are ErrMalformed; ColumnName reads the
// same name; SetFixed keeps a definition parseable.
func FuzzParseColumn(f *testing.F) {
	f.Add(AppendColumn(nil, "shop", "c", "customers", "card", "card", 45, 76, gm.MYSQL_TYPE_VAR_STRING, 0, 0))
	f.Add(AppendColumn(nil, "", "", "", "1", "", 63, 1, gm.MYSQL_TYPE_LONGLONG, gm.NOT_NULL_FLAG|gm.BINARY_FLAG, 0))
	ext := []byte{3, 'd', 'e', 'f', 0, 0, 0, 1, 'j', 1, 'j', 6, 0, 4, 'j', 's', 'o', 'n'} // MariaDB extended metadata: type "json"
	f.Add(append(ext, 0x0c, 45, 0, 0xff, 0xff, 0xff, 0xff, gm.MYSQL_TYPE_BLOB, 0x10, 0, 0, 0, 0))
	f.Fuzz(func(t *testing.T, def []byte) {
		c, err := ParseColumn(def)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatal(err)
			}
			return
		}
		// The reply tracker's name is the definition's.
		if name, err := ColumnName(def); err != nil || !bytes.Equal(name, c.Name) {
			t.Fatalf("ColumnName = %q, %v; ParseColumn's name %q", name, err, c.Name)
		}
		out := c.SetFixed(def, nil, 33, 96, gm.MYSQL_TYPE_VAR_STRING, 0, 0)
		c2, err := ParseColumn(out)
		if err != nil || c2.Type != gm.MYSQL_TYPE_VAR_STRING || !bytes.Equal(c2.Name, c.Name) {
			t.Fatalf("rewritten definition %x: %+v %v", out, c2, err)
		}
	})
}

func TestParseColumnExtended(t *testing.T) {
	ext := []byte{3, 'd', 'e', 'f', 0, 0, 0, 1, 'j', 1, 'j', 6, 0, 4, 'j', 's', 'o', 'n'}
	def := append(ext, 0x0c, 45, 0, 0xff, 0xff, 0xff, 0xff, gm.MYSQL_TYPE_BLOB, 0x10, 0, 0, 0, 0)
	c, err := ParseColumn(def)
	if err != nil || !c.IsJSON() || c.Type != gm.MYSQL_TYPE_BLOB || string(c.Name) != "j" {
		t.Fatalf("ParseColumn() = %+v, %v", c, err)
	}
}
