package masking

import "regexp"

var (
	emailRE = regexp.MustCompile(`(?i)[a-z0-9._%+\-]+@[a-z0-9\-]+(\.[a-z0-9\-]+)*\.[a-z]{2,}`)
	ssnRE   = regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`)
	ibanRE  = regexp.MustCompile(`\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}\b`)
)

// detect returns the name of the first enabled detector that finds a
// sensitive value in v, or "".
func (d DetectorConfig) detect(v []byte) string {
	if d.Cards && hasCard(v) {
		return "card"
	}
	if d.Email && emailRE.Match(v) {
		return "email"
	}
	if d.NationalIDs && ssnRE.Match(v) {
		return "national_id"
	}
	if d.IBAN {
		for _, m := range ibanRE.FindAll(v, -1) {
			if validIBAN(m) {
				return "iban"
			}
		}
	}
	return ""
}

// hasCard reports whether v holds a run of 13–19 digits, optionally split by
// single spaces or dashes, that passes the Luhn check.
func hasCard(v []byte) bool {
	var digits [19]byte
	for i := 0; i < len(v); i++ {
		if v[i] < '0' || v[i] > '9' || (i > 0 && v[i-1] >= '0' && v[i-1] <= '9') {
			continue
		}
		n := 0
		for j := i; j < len(v) && n < len(digits); j++ {
			c := v[j]
			if c >= '0' && c <= '9' {
				digits[n] = c - '0'
				n++
				if n >= 13 && luhn(digits[:n]) && (j+1 == len(v) || v[j+1] < '0' || v[j+1] > '9') {
					return true
				}
				continue
			}
			if (c == ' ' || c == '-') && j+1 < len(v) && v[j+1] >= '0' && v[j+1] <= '9' {
				continue
			}
			break
		}
	}
	return false
}

func luhn(d []byte) bool {
	sum := 0
	for i := len(d) - 1; i >= 0; i-- {
		x := int(d[i])
		if (len(d)-1-i)%2 == 1 {
			x *= 2
			if x > 9 {
				x -= 9
			}
		}
		sum += x
	}
	return sum%10 == 0
}

func validIBAN(m []byte) bool {
	var s []byte
	for _, c := range m {
		if c != ' ' {
			s = append(s, c)
		}
	}
	if len(s) < 15 || len(s) > 34 {
		return false
	}
	s = append(s[4:], s[:4]...)
	rem := 0
	for _, c := range s {
		switch {
		case c >= '0' && c <= '9':
			rem = (rem*10 + int(c-'0')) % 97
		case c >= 'A' && c <= 'Z':
			rem = (rem*100 + int(c-'A'+10)) % 97
		default:
			return false
		}
	}
	return rem == 1
}
