package rows

import "github.com/sqlwarden/sqlwarden/pkg/wire"

// Values receives the values of a text row in order (the result digest,
// for one). A value aliases the row.
type Values interface {
	Value(v []byte)
	Null()
}

// EachText hands each value of a text-protocol row to to. It reports false
// for a malformed row, after handing over the values before the fault.
func EachText(row []byte, to Values) bool {
	for len(row) > 0 {
		v, null, n, ok := wire.LenEncString(row)
		if !ok {
			return false
		}
		if null {
			to.Null()
		} else {
			to.Value(v)
		}
		row = row[n:]
	}
	return true
}
