package auth

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// tiny keeps tests fast; production uses DefaultArgon2Params.
var tiny = Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

func TestHashAndCheckPassword(t *testing.T) {
	h, err := HashPassword("correct horse", tiny)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Fatalf("hash %q is not in PHC format with the configured params", h)
	}
	if err := CheckPassword("correct horse", h); err != nil {
		t.Fatalf("right password: %v", err)
	}
	for _, pw := range []string{"correct horsE", "", "correct horse ", "correct"} {
		if err := CheckPassword(pw, h); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("CheckPassword(%q) = %v, want ErrPasswordMismatch", pw, err)
		}
	}
	h2, err := HashPassword("correct horse", tiny)
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Fatal("two hashes of one password are equal: salt is not random")
	}
}

func TestCheckUsesParamsOfTheHash(t *testing.T) {
	p := Argon2Params{Memory: 128, Time: 2, Threads: 2, SaltLen: 8, KeyLen: 16}
	h, err := HashPassword("pw-123456", p)
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := ParseHash(h)
	if err != nil {
		t.Fatal(err)
	}
	if parsed.Memory != 128 || parsed.Time != 2 || parsed.Threads != 2 || len(parsed.Salt) != 8 || len(parsed.Key) != 16 {
		t.Fatalf("parsed %+v", parsed)
	}
	// An Auth configured with other params still checks the old hash.
	a := newTestAuth(t, time.Now)
	if err := a.CheckPassword(context.Background(), "pw-123456", h); err != nil {
		t.Fatal(err)
	}
}

func TestParseHashRejects(t *testing.T) {
	good, err := HashPassword("x", tiny)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Split(good, "$")
	salt, key := f[4], f[5]
	for _, tc := range []struct{ name, in string }{
		{"empty", ""},
		{"argon2i", "$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key},
		{"bcrypt", "$2a$10$abcdefghijklmnopqrstuu5Lc6zXUlrW7V4.8ktpVOHtJWJ8fXPi"},
		{"old version", "$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key},
		{"no version", "$argon2id$m=64,t=1,p=1$" + salt + "$" + key},
		{"params out of order", "$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key},
		{"leading zero", "$argon2id$v=19$m=064,t=1,p=1$" + salt + "$" + key},
		{"signed", "$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key},
		{"huge memory", "$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key},
		{"overflow", "$argon2id$v=19$m=99999999999999999999,t=1,p=1$" + salt + "$" + key},
		{"memory below 8p", "$argon2id$v=19$m=8,t=1,p=2$" + salt + "$" + key},
		{"zero time", "$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key},
		{"huge time", "$argon2id$v=19$m=64,t=1000000,p=1$" + salt + "$" + key},
		{"zero threads", "$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key},
		{"256 threads", "$argon2id$v=19$m=4096,t=1,p=256$" + salt + "$" + key},
		{"padded salt", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "==$" + key},
		{"short salt", "$argon2id$v=19$m=64,t=1,p=1$YWJj$" + key},
		{"short key", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$YWJjZGVm"},
		{"extra field", good + "$x"},
		{"missing key", "$argon2id$v=19$m=64,t=1,p=1$" + salt},
		{"not base64", "$argon2id$v=19$m=64,t=1,p=1$" + salt + "$!!!!" + key},
		{"too long", good + strings.Repeat("A", 300)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := ParseHash(tc.in); !errors.Is(err, ErrBadHash) {
				t.Fatalf("ParseHash(%q) = %v, want ErrBadHash", tc.in, err)
			}
			if err := CheckPassword("x", tc.in); !errors.Is(err, ErrBadHash) {
				t.Fatalf("CheckPassword = %v, want ErrBadHash", err)
			}
		})
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Argon2Params
		ok   bool
	}{
		{"zero means defaults", Argon2Params{}, true},
		{"tiny", tiny, true},
		{"memory too small for threads", Argon2Params{Memory: 8, Threads: 4}, false},
		{"memory too large", Argon2Params{Memory: MaxArgon2Memory + 1}, false},
		{"time too large", Argon2Params{Time: MaxArgon2Time + 1}, false},
		{"short salt", Argon2Params{SaltLen: 4}, false},
		{"long key", Argon2Params{KeyLen: 65}, false},
	} {
		if err := tc.p.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestHashingRespectsContext(t *testing.T) {
	a := newTestAuth(t, time.Now)
	// Fill every slot, then a hash must give up when its ctx ends.
	for i := 0; i < cap(a.sem); i++ {
		a.sem <- struct{}{}
	}
	t.Cleanup(func() {
		for i := 0; i < cap(a.sem); i++ {
			<-a.sem
		}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.HashPassword(ctx, "password1"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("HashPassword with no free slot = %v, want deadline exceeded", err)
	}
}

func TestCheckDummyAlwaysFails(t *testing.T) {
	a := newTestAuth(t, time.Now)
	for _, pw := range []string{"", "password", a.dummy} {
		if err := a.CheckDummy(context.Background(), pw); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("CheckDummy(%q) = %v", pw, err)
		}
	}
}

func FuzzParseHash(f *testing.F) {
	good, err := HashPassword("seed", tiny)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, "", "$argon2id$v=19$m=64,t=1,p=1$$", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHash(s)
		if err != nil {
			if !errors.Is(err, ErrBadHash) {
				t.Fatalf("error %v does not wrap ErrBadHash", err)
			}
			return
		}
		// Only the canonical form parses, so it re-encodes to the input.
		if got := h.String(); got != s {
			t.Fatalf("ParseHash(%q).String() = %q", s, got)
		}
	})
}

// BenchmarkHashPasswordDefault measures the production cost (OWASP params):
// the price of each registration and login.
func BenchmarkHashPasswordDefault(b *testing.B) {
	for b.Loop() {
		if _, err := HashPassword("correct horse battery", DefaultArgon2Params()); err != nil {
			b.Fatal(err)
		}
	}
}
