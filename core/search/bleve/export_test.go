package bleve

import (
	"context"
	"errors"
	"time"
)

// Settle waits until scorch's merger has been idle for 4 seconds, so
// that a benchmark measures a settled index and not one the merger is
// still rewriting beside it.
func Settle(ctx context.Context, e *Engine) error {
	adv, err := e.idx.Advanced()
	if err != nil {
		return err
	}
	s, ok := adv.(interface{ StatsMap() map[string]interface{} })
	if !ok {
		return errors.New("no scorch stats")
	}
	var last [3]any
	for stable := 0; stable < 4; {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
		m := s.StatsMap()
		now := [3]any{m["TotFileMergeSegments"], m["TotFileMergeLoopBeg"], m["CurOnDiskFiles"]}
		// No merge began, none is running (a big one takes many seconds)
		// and none is waiting to be introduced.
		if now == last && m["TotFileMergeZapBeg"] == m["TotFileMergeZapEnd"] &&
			m["TotFileMergeIntroductions"] == m["TotFileMergeIntroductionsDone"] {
			stable++
		} else {
			stable = 0
		}
		last = now
	}
	return nil
}
