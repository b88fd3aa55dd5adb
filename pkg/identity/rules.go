package identity

import (
	"path"
	"slices"
)

// matches reports whether every condition the rule sets holds for id.
func (r *BackendRule) matches(id *Identity) bool {
	if r.Name != "" && !glob(r.Name, id.Name) {
		return false
	}
	if r.Subject != "" && !glob(r.Subject, id.Subject) {
		return false
	}
	if r.Source != "" && r.Source != id.Source {
		return false
	}
	if len(r.Groups) > 0 && !slices.ContainsFunc(r.Groups, func(g string) bool { return slices.Contains(id.Groups, g) }) {
		return false
	}
	for k, want := range r.Claims {
		v, ok := LookupClaim(id.Claims, k)
		if !ok {
			return false
		}
		got, ok := claimString(v)
		if !ok || got != want {
			return false
		}
	}
	return true
}

func glob(pattern, s string) bool {
	ok, err := path.Match(pattern, s)
	return err == nil && ok
}

// BackendFor returns the backend of the first rule matching id, else the
// identity's own default.
func BackendFor(rules []BackendRule, id *Identity) string {
	for i := range rules {
		if rules[i].matches(id) {
			return rules[i].Backend
		}
	}
	return id.Backend
}
