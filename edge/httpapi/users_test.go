package httpapi

import (
	"slices"
	"strings"
	"testing"
)

// GET /v1/users names users of the caller's workspace by id or username;
// other workspaces' users and unknown ones are left out.
func TestLookupUsers(t *testing.T) {
	e := newTestEnv(t, nil)
	ana := e.newUser("acme", "ana")
	bo := e.newUser("acme", "bo")
	zed := e.newUser("other", "zed")
	ids := func(r usersResponse) []string {
		var out []string
		for _, u := range r.Users {
			out = append(out, u.Username)
		}
		slices.Sort(out)
		return out
	}
	for _, tc := range []struct {
		query string
		want  []string
	}{
		{"ids=" + ana.User.ID + "," + bo.User.ID, []string{"ana", "bo"}},
		{"ids=" + zed.User.ID + ",u_nobody", nil},
		{"usernames=bo,zed", []string{"bo"}},
		{"ids=" + ana.User.ID + "&usernames=bo", []string{"ana", "bo"}},
	} {
		var r usersResponse
		e.want(e.do("GET", "/v1/users?"+tc.query, ana.AccessToken, nil), 200, &r)
		if got := ids(r); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %v, want %v", tc.query, got, tc.want)
		}
	}
	for _, q := range []string{"", "ids=", "ids=NOT-AN-ID", "ids=" + strings.Repeat("u_a,", maxUserLookup+1)} {
		if r := e.do("GET", "/v1/users?"+q, ana.AccessToken, nil); r.status != 400 || r.errCode(t) != "invalid_argument" {
			t.Errorf("%q: %d %s, want 400 invalid_argument", q, r.status, r.body)
		}
	}
	if r := e.do("GET", "/v1/users?ids="+bo.User.ID, "", nil); r.status != 401 {
		t.Errorf("without a token: %d, want 401", r.status)
	}
}
