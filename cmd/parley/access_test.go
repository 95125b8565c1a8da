package main

import (
	"flag"
	"io"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/edge"
)

func TestAccessFlags(t *testing.T) {
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	var c edge.Config
	edgeFlags(fs, &c, "")
	err := fs.Parse([]string{"-cors-origins", "https://a.example, http://localhost:5173", "-login-free-failures", "5",
		"-login-delay", "2s", "-login-delay-max", "30s"})
	if err != nil {
		t.Fatal(err)
	}
	login, cors := c.HTTP.LoginThrottle, c.HTTP.CORS
	if !slices.Equal(cors.AllowedOrigins, []string{"https://a.example", "http://localhost:5173"}) ||
		login.FreeFailures != 5 || login.BaseDelay != 2*time.Second || login.MaxDelay != 30*time.Second {
		t.Fatalf("parsed %+v %+v", cors, login)
	}
	fs = flag.NewFlagSet("t", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	edgeFlags(fs, &c, "")
	if err := fs.Parse([]string{"-cors-origins", "https://a.example/"}); err == nil {
		t.Fatal("an origin with a path was accepted")
	}
}
