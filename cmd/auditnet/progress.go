package main

import (
	"io"
	"os"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// progress is a byte-count bar on stderr, shown only when stderr is a
// terminal; a nil *progress does nothing.
type progress struct {
	bar *progressbar.ProgressBar
}

// newProgress returns a bar, or nil when w is not a terminal; total is
// only computed when a bar will be shown.
func newProgress(w io.Writer, total func() int64, what string) *progress {
	f, ok := w.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return newBar(w, total(), what)
}

func newBar(w io.Writer, total int64, what string) *progress {
	if total < 1<<20 {
		return nil
	}
	return &progress{bar: progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(w),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionThrottle(100_000_000),
		progressbar.OptionClearOnFinish(),
	)}
}

func (p *progress) add(n int) {
	if p != nil {
		p.bar.Add(n)
	}
}

func (p *progress) finish() {
	if p != nil {
		p.bar.Finish()
	}
}
