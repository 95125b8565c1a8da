package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

var stubDevice = &syncpb.Device{Id: "d_1", UserId: "u_1", Refresh: &syncpb.TokenFamily{Id: "0123456789abcdef", Generation: 1}}

// stubCore answers every request successfully with an empty result of the
// right kind, without NATS: for tests of the HTTP layer alone.
type stubCore struct{}

func (stubCore) Call(_ context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	r := &syncpb.CoreResponse{}
	switch op := req.Op.(type) {
	case *syncpb.CoreRequest_RegisterUser:
		r.Result = &syncpb.CoreResponse_User{User: &syncpb.User{Id: "u_1", WorkspaceId: "w_1"}}
	case *syncpb.CoreRequest_GetCredentials:
		r.Result = &syncpb.CoreResponse_Credentials{Credentials: &syncpb.Credentials{User: &syncpb.User{Id: "u_1", WorkspaceId: "w_1"}, PasswordHash: "$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA"}}
	case *syncpb.CoreRequest_LookupUsers:
		var us []*syncpb.User
		for i, n := range op.LookupUsers.Usernames {
			us = append(us, &syncpb.User{Id: "u_" + string(rune('a'+i%26)), Username: n})
		}
		r.Result = &syncpb.CoreResponse_Users{Users: &syncpb.UserList{Users: us}}
	case *syncpb.CoreRequest_RegisterDevice, *syncpb.CoreRequest_GetDevice, *syncpb.CoreRequest_RevokeDevice, *syncpb.CoreRequest_StartTokenFamily:
		r.Result = &syncpb.CoreResponse_Device{Device: stubDevice}
	case *syncpb.CoreRequest_RotateRefresh:
		r.Result = &syncpb.CoreResponse_RefreshRotation{RefreshRotation: &syncpb.RefreshRotation{
			Outcome: syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED, Device: stubDevice}}
	case *syncpb.CoreRequest_ListDevices:
		r.Result = &syncpb.CoreResponse_Devices{Devices: &syncpb.DeviceList{}}
	case *syncpb.CoreRequest_ChangePassword:
		r.Result = &syncpb.CoreResponse_User{User: &syncpb.User{Id: "u_1", WorkspaceId: "w_1"}}
	case *syncpb.CoreRequest_CreateConversation, *syncpb.CoreRequest_GetConversation, *syncpb.CoreRequest_ChangeMembers:
		r.Result = &syncpb.CoreResponse_Conversation{Conversation: &syncpb.Conversation{Id: "c_1"}}
	case *syncpb.CoreRequest_ListConversations:
		r.Result = &syncpb.CoreResponse_Conversations{Conversations: &syncpb.ConversationList{}}
	case *syncpb.CoreRequest_Send:
		r.Result = &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{ConvId: op.Send.ConvId, Seq: 1}}
	case *syncpb.CoreRequest_History:
		r.Result = &syncpb.CoreResponse_History{History: &syncpb.HistoryResponse{Messages: []*syncpb.Message{
			{Seq: 1, Body: []byte("text")}, {Seq: 2, Body: []byte{0xff}, ContentType: "text/plain"}}}}
	case *syncpb.CoreRequest_Receipt:
		r.Result = &syncpb.CoreResponse_ReceiptAck{ReceiptAck: &syncpb.ReceiptAck{ConvId: op.Receipt.ConvId, Seq: op.Receipt.Seq}}
	}
	return r, nil
}

func (stubCore) RegionInfo(context.Context) (*syncpb.RegionInfo, error) {
	return &syncpb.RegionInfo{Region: "local", ShardCount: 1, ShardLeaders: []string{"stub"}, DirectoryLeader: "stub"}, nil
}

// newStubAPI returns an API over stubCore and an access token for it.
func newStubAPI(t testing.TB) (*API, string) {
	t.Helper()
	key, err := auth.GenerateKey("k")
	if err != nil {
		t.Fatal(err)
	}
	au, err := auth.New(auth.Config{Keys: []auth.Key{key}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := au.Issue(auth.Access, auth.Identity{WorkspaceID: "w_1", UserID: "u_1", DeviceID: "d_1"})
	if err != nil {
		t.Fatal(err)
	}
	api, err := New(Config{Core: stubCore{}, Auth: au, MaxBodyBytes: 16 << 10, RequestTimeout: 2 * time.Second,
		UserRate: rate.Inf, IPRate: rate.Inf})
	if err != nil {
		t.Fatal(err)
	}
	return api, tok
}

type oaRef struct {
	Ref string `json:"$ref"`
}

type oaResponse struct {
	Ref     string `json:"$ref"`
	Content map[string]struct {
		Schema oaRef `json:"schema"`
	} `json:"content"`
}

type oaParam struct {
	Ref  string `json:"$ref"`
	Name string `json:"name"`
	In   string `json:"in"`
}

type oaOperation struct {
	OperationID string                `json:"operationId"`
	Security    []map[string][]string `json:"security"`
	Parameters  []oaParam             `json:"parameters"`
	RequestBody json.RawMessage       `json:"requestBody"`
	Responses   map[string]oaResponse `json:"responses"`
}

type oaDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Responses  map[string]oaResponse      `json:"responses"`
		Parameters map[string]oaParam         `json:"parameters"`
		Schemas    map[string]json.RawMessage `json:"schemas"`
	} `json:"components"`
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

// example fills a route pattern's wildcards with valid ids.
func example(pattern string) string {
	return pathParam.ReplaceAllStringFunc(pattern, func(s string) string {
		return "x_" + strings.Trim(s, "{}")
	})
}

// readsBody reports whether the route reads a JSON body: an empty body
// then gets "request body is empty".
func readsBody(t *testing.T, api *API, tok string, rt route) bool {
	t.Helper()
	req := httptest.NewRequest(rt.method, example(rt.pattern), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	api.ServeHTTP(rec, req)
	return rec.Code == 400 && strings.Contains(rec.Body.String(), "request body is empty")
}

// TestOpenAPIMatchesRoutes checks openapi.json against the route table in
// both directions, and that each operation documents the errors the route
// can answer with.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc oaDoc
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1") {
		t.Fatalf("openapi version %q, want 3.1.x", doc.OpenAPI)
	}
	api, tok := newStubAPI(t)

	ops := map[string]oaOperation{} // "METHOD pattern"
	ids := map[string]bool{}
	for path, item := range doc.Paths {
		for method, raw := range item {
			if !slices.Contains(httpMethods, method) {
				continue
			}
			var op oaOperation
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			key := strings.ToUpper(method) + " " + path
			if op.OperationID == "" || ids[op.OperationID] {
				t.Errorf("%s: missing or duplicate operationId %q", key, op.OperationID)
			}
			ids[op.OperationID] = true
			ops[key] = op
		}
	}

	inTable := map[string]bool{}
	for _, rt := range routes {
		key := rt.method + " " + rt.pattern
		inTable[key] = true
		// The mux serves the route under exactly this pattern.
		if _, pat := api.mux.Handler(httptest.NewRequest(rt.method, example(rt.pattern), nil)); pat != key {
			t.Errorf("%s: mux matched %q", key, pat)
		}
		op, ok := ops[key]
		if !ok {
			t.Errorf("%s is served but not documented in openapi.json", key)
			continue
		}
		bearer := len(op.Security) > 0 && op.Security[0]["bearer"] != nil
		if bearer != rt.auth {
			t.Errorf("%s: documented bearer security %v, route auth %v", key, bearer, rt.auth)
		}
		// Path parameters match the pattern's wildcards.
		var docParams []string
		for _, p := range op.Parameters {
			if p.Ref != "" {
				p = doc.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
			}
			if p.In == "path" {
				docParams = append(docParams, p.Name)
			}
		}
		var wild []string
		for _, m := range pathParam.FindAllStringSubmatch(rt.pattern, -1) {
			wild = append(wild, m[1])
		}
		slices.Sort(docParams)
		slices.Sort(wild)
		if !slices.Equal(docParams, wild) {
			t.Errorf("%s: documented path parameters %v, pattern has %v", key, docParams, wild)
		}
		body := readsBody(t, api, tok, rt)
		if body != (op.RequestBody != nil) {
			t.Errorf("%s: reads a body %v, documents a requestBody %v", key, body, op.RequestBody != nil)
		}

		// The errors this route can produce must be documented.
		want := []string{"500"}
		if rt.auth {
			want = append(want, "401", "429")
		}
		if rt.ipLimit {
			want = append(want, "429")
		}
		if body {
			want = append(want, "400", "413")
		}
		if len(op.Parameters) > 0 {
			want = append(want, "400")
		}
		if rt.core {
			want = append(want, "503", "504")
		}
		for _, code := range want {
			if _, ok := op.Responses[code]; !ok {
				t.Errorf("%s: error response %s is not documented", key, code)
			}
		}
		for code, r := range op.Responses {
			if code < "400" {
				continue
			}
			if r.Ref != "" {
				r = doc.Components.Responses[strings.TrimPrefix(r.Ref, "#/components/responses/")]
			}
			if r.Content["application/json"].Schema.Ref != "#/components/schemas/Error" {
				t.Errorf("%s: response %s is not the JSON Error schema", key, code)
			}
		}
	}
	for key := range ops {
		if !inTable[key] {
			t.Errorf("%s is documented but not served", key)
		}
	}

	// Every $ref resolves.
	var all any
	if err := json.Unmarshal(openapiDoc, &all); err != nil {
		t.Fatal(err)
	}
	var walk func(v any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			if ref, ok := v["$ref"].(string); ok {
				if !resolves(all, ref) {
					t.Errorf("unresolved $ref %q", ref)
				}
			}
			for _, x := range v {
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(all)
}

func resolves(doc any, ref string) bool {
	if !strings.HasPrefix(ref, "#/") {
		return false
	}
	cur := doc
	for _, part := range strings.Split(ref[2:], "/") {
		m, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		if cur, ok = m[part]; !ok {
			return false
		}
	}
	return true
}

// FuzzHandlers sends arbitrary bodies, path values and queries to every
// route: nothing a client sends may crash the server or produce a 500, and
// every answer with a body is JSON.
func FuzzHandlers(f *testing.F) {
	f.Add(uint8(0), "x", "", []byte(`{}`))
	f.Add(uint8(18), "c_1", "", []byte(`{"conv_id":"c_1","client_msg_id":"a","body":"hi"}`))
	f.Add(uint8(18), "c_1", "", []byte(`{"conv_id":"c_1","client_msg_id":"a","body_base64":"AAEC","attachments":[{"id":"a_1","meta_base64":"AA"}]}`))
	f.Add(uint8(17), "c_1", "cursor=5&limit=2&dir=forward", []byte(nil))
	f.Add(uint8(11), "", "", []byte(`{"type":"direct","member_usernames":["bo"]}`))
	f.Add(uint8(5), "", "", []byte(`{"workspace":"w","username":"u","password":"password"}`))
	f.Add(uint8(6), "", "", []byte(`{"refresh_token":"a.b"}`))
	f.Add(uint8(16), "c_1", "", []byte(`{"role":"admin"}`))
	f.Add(uint8(19), "", "", []byte(`{"conv_id":"c_1","seq":1,"type":"read"}`))
	f.Add(uint8(2), "", "", []byte(`[`))
	f.Add(uint8(routeIndex("/v1/me/password")), "", "", []byte(`{"current_password":"x","new_password":"password"}`))
	api, tok := newStubAPI(f)
	f.Fuzz(func(t *testing.T, idx uint8, pathValue, query string, body []byte) {
		rt := routes[int(idx)%len(routes)]
		path := pathParam.ReplaceAllLiteralString(rt.pattern, urlEscape(pathValue))
		if query != "" {
			path += "?" + urlEscape(query)
		}
		req, err := http.NewRequest(rt.method, "http://edge"+path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		req.RemoteAddr = "192.0.2.1:1234"
		req.Header.Set("Authorization", "Bearer "+tok)
		rec := httptest.NewRecorder()
		api.ServeHTTP(rec, req)
		if rec.Code >= 500 {
			t.Fatalf("%s %s %q: %d %s", rt.method, path, body, rec.Code, rec.Body)
		}
		// The mux's redirects to a cleaned path are the one non-JSON answer.
		if rec.Code/100 != 3 && rec.Body.Len() > 0 && !json.Valid(rec.Body.Bytes()) {
			t.Fatalf("%s %s: body is not JSON: %s", rt.method, path, rec.Body)
		}
	})
}

// urlEscape keeps the fuzz input in one path segment / query string.
func urlEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '=' || c == '&' {
			b.WriteByte(c)
		} else {
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}

// BenchmarkSend is the HTTP layer of POST /v1/messages (token check, rate
// limit, JSON decode and validation, response) over a stub core.
func BenchmarkSend(b *testing.B) {
	api, tok := newStubAPI(b)
	body := []byte(`{"conv_id":"c_abcdefghijklmnopqrstuvwxyz","client_msg_id":"m-1","body":"hello, world"}`)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			req := httptest.NewRequest("POST", "/v1/messages", bytes.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+tok)
			rec := httptest.NewRecorder()
			api.ServeHTTP(rec, req)
			if rec.Code != http.StatusCreated {
				b.Errorf("status %d: %s", rec.Code, rec.Body)
				return
			}
		}
	})
}

// routeIndex is the index in routes of the route with pattern.
func routeIndex(pattern string) int {
	for i, rt := range routes {
		if rt.pattern == pattern {
			return i
		}
	}
	panic("no route " + pattern)
}
