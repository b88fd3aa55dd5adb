package sqltext

import (
	"errors"
	"fmt"
	"strings"
)

// Charset is how a client character set affects reading a statement.
type Charset uint8

const (
	// CharsetUTF8: utf8mb3 and utf8mb4. No byte of a multi-byte character is
	// ASCII, and the parser reads bytes >= 0x80 as the server does.
	CharsetUTF8 Charset = iota
	// CharsetOther: single-byte character sets and the EUC family (ujis,
	// eucjpms, euckr, gb2312), whose multi-byte characters never contain a
	// quote, a backslash or a comment character. Bytes >= 0x80 outside
	// quotes and comments are refused: some are spaces to the server (0xA0
	// in latin1) but identifier characters to the parser.
	CharsetOther
)

// unsafeCharsets are client character sets in which the second byte of a
// multi-byte character can be 0x5C (a backslash) or another ASCII byte the
// lexer gives meaning to: the server reads "\xbf\x5c'" as one character and
// a quote, a parser that does not know the character set as an escaped quote.
var unsafeCharsets = map[string]bool{"big5": true, "cp932": true, "gbk": true, "gb18030": true, "sjis": true}

var otherCharsets = map[string]bool{
	"ascii": true, "binary": true, "latin1": true, "latin2": true, "latin5": true, "latin7": true,
	"armscii8": true, "cp1250": true, "cp1251": true, "cp1256": true, "cp1257": true, "cp850": true,
	"cp852": true, "cp866": true, "dec8": true, "geostd8": true, "greek": true, "hebrew": true, "hp8": true,
	"keybcs2": true, "koi8r": true, "koi8u": true, "macce": true, "macroman": true, "swe7": true, "tis620": true,
	"ujis": true, "eucjpms": true, "euckr": true, "gb2312": true,
}

// errTrailingBackslash: a character set in which the server reads 0xBF 0x5C
// as one character where a parser that does not know it sees a backslash.
var errTrailingBackslash = errors.New("a multi-byte character can end in a backslash (0x5C)")

// ClientCharset judges a character_set_client value (a character set name
// or a collation name such as gbk_chinese_ci). Character sets whose
// multi-byte characters can end in a backslash, and any the package does not
// know, are an error.
func ClientCharset(name string) (Charset, error) {
	cs := strings.ToLower(strings.TrimSpace(name))
	switch cs {
	case "utf8", "utf8mb3", "utf8mb4":
		return CharsetUTF8, nil
	}
	if otherCharsets[cs] {
		return CharsetOther, nil
	}
	if unsafeCharsets[cs] {
		return 0, fmt.Errorf("client character set %s is refused: %w", cs, errTrailingBackslash)
	}
	// A collation name: its character set is the part before the first '_'
	// (utf8mb4_general_ci, gbk_bin, ucs2_unicode_ci).
	if i := strings.IndexByte(cs, '_'); i > 0 {
		if c, err := ClientCharset(cs[:i]); err == nil || unsafeCharsets[cs[:i]] {
			return c, err
		}
	}
	return 0, fmt.Errorf("client character set %q is not supported", name)
}

// ResultsCharset judges a character_set_results value: the character set
// the server converts result values, column names and SHOW output into.
// It must carry ASCII unchanged, so that what the proxy reads in a result
// (column names, SHOW GRANTS' `PASSWORD '…'`, the patterns of value
// detectors) is what the client gets: UCS-2, UTF-16 and UTF-32 encode
// ASCII in two or four bytes, and `filename` spells punctuation as @xxxx.
// NULL (no conversion) and every character set ClientCharset takes are
// fine, and so are those it refuses for their backslashes: results are not
// parsed as statements.
func ResultsCharset(name string) error {
	cs := strings.ToLower(strings.TrimSpace(name))
	switch {
	case cs == "" || cs == "null":
		return nil
	case strings.HasPrefix(cs, "ucs2"), strings.HasPrefix(cs, "utf16"), strings.HasPrefix(cs, "utf32"), cs == "filename":
		// the character sets, their collations (utf16le_general_ci)
		return fmt.Errorf("character_set_results %s is refused: it does not carry ASCII unchanged, so result text could not be checked", cs)
	}
	if _, err := ClientCharset(cs); err != nil && !errors.Is(err, errTrailingBackslash) {
		return fmt.Errorf("character_set_results %q is not supported", name)
	}
	return nil
}
