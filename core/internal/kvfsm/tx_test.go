package kvfsm

import (
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// Tx.Scan merges the stored keys with the batch's and the entry's writes
// in order, from any seek, in both directions, and stops when fn does.
func TestTxScanMerges(t *testing.T) {
	db := openDB(t, "", 16<<20)
	stored := []string{"p/b", "p/d", "p/f", "p/h", "q/a"}
	err := db.Update(func(txn *badger.Txn) error {
		for _, k := range stored {
			if err := txn.Set([]byte("f/g/"+k), []byte("stored "+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// The merged state: b and f rewritten, d deleted, a, e and i new.
	want := map[string]string{"p/a": "batch p/a", "p/b": "entry p/b", "p/e": "entry p/e", "p/f": "batch p/f", "p/h": "stored p/h", "p/i": "entry p/i"}
	err = db.View(func(txn *badger.Txn) error {
		tx := newTx(View{txn: txn, prefix: []byte("f/g/")})
		tx.Set([]byte("p/a"), []byte("batch p/a"))
		tx.Set([]byte("p/b"), []byte("batch p/b"))
		tx.Set([]byte("p/f"), []byte("batch p/f"))
		tx.Delete([]byte("p/d"))
		tx.Set([]byte("q/z"), []byte("other prefix"))
		tx.keep()
		tx.Set([]byte("p/b"), []byte("entry p/b"))
		tx.Set([]byte("p/e"), []byte("entry p/e"))
		tx.Set([]byte("p/i"), []byte("entry p/i"))
		all := slices.Sorted(func(yield func(string) bool) {
			for k := range want {
				if !yield(k) {
					return
				}
			}
		})
		for _, reverse := range []bool{false, true} {
			for _, seek := range []string{"", "p/", "p/a", "p/c", "p/d", "p/f", "p/g", "p/i", "p/z"} {
				for stop := 1; stop <= len(all)+1; stop++ {
					var exp []string
					order := slices.Clone(all)
					if reverse {
						slices.Reverse(order)
					}
					for _, k := range order {
						if seek != "" && ((!reverse && k < seek) || (reverse && k > seek)) {
							continue
						}
						if len(exp) < stop {
							exp = append(exp, k+"="+want[k])
						}
					}
					var got []string
					var s []byte
					if seek != "" {
						s = []byte(seek)
					}
					err := tx.Scan([]byte("p/"), s, reverse, func(k, v []byte) (bool, error) {
						got = append(got, string(k)+"="+string(v))
						return len(got) < stop, nil
					})
					if err != nil {
						return err
					}
					if strings.Join(got, " ") != strings.Join(exp, " ") {
						t.Errorf("reverse %v seek %q stop %d: %q, want %q", reverse, seek, stop, got, exp)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
