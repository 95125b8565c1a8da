package cjk

import (
	"fmt"
	"slices"
	"testing"
)

func TestSplit(t *testing.T) {
	in := []byte("ok 東京タワー, 세계!")
	var got []string
	for _, s := range Split(in) {
		got = append(got, fmt.Sprintf("%q:%v", in[s.Start:s.End], s.CJK))
	}
	want := []string{`"ok ":false`, `"東京タワー":true`, `", ":false`, `"세계":true`, `"!":false`}
	if !slices.Equal(got, want) {
		t.Errorf("Split: %v, want %v", got, want)
	}
}

func TestGrams(t *testing.T) {
	run := []byte("上海东")
	show := func(gs []Gram) []string {
		var out []string
		for _, g := range gs {
			out = append(out, fmt.Sprintf("%s@%d", run[g.Start:g.End], g.Pos))
		}
		return out
	}
	if got, want := show(Grams(run, false)), []string{"上@0", "上海@0", "海@1", "海东@1", "东@2"}; !slices.Equal(got, want) {
		t.Errorf("index grams %v, want %v", got, want)
	}
	if got, want := show(Grams(run, true)), []string{"上海@0", "海东@1", "东@2"}; !slices.Equal(got, want) {
		t.Errorf("query grams %v, want %v", got, want)
	}
	if got := Grams([]byte("海"), true); len(got) != 1 || got[0] != (Gram{0, 3, 0}) {
		t.Errorf("a lone character: %v", got)
	}
}
