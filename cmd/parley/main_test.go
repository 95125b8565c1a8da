package main

import (
	"os"
	"testing"
)

// asParleyEnv set to 1 makes the test binary run as `parley` itself, so
// that tests can start it as core and edge processes (bench -region
// starts os.Executable()).
const asParleyEnv = "PARLEY_TEST_AS_PARLEY"

func TestMain(m *testing.M) {
	if os.Getenv(asParleyEnv) == "1" {
		os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
