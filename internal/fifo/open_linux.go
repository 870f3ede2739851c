//go:build linux

package fifo

import (
	"context"
	"errors"
	"os"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Open opens the FIFO at path for reading, and waits until a writer
// has written to it or come and gone, or ctx is done. open(2) would wait
// for the writer itself, where nothing can end the wait but a writer: a
// signal would not end ferry. Opened non-blocking, it does not wait; the
// runtime's poller then waits for the first bytes (or the writer's end),
// which a read deadline ends when ctx is done. Before any writer has
// come, a read of the FIFO would give end of file at once: that is why
// the first bytes are waited for here, not left to the first Read.
func Open(ctx context.Context, path string) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	rc, err := f.SyscallConn()
	if err != nil {
		f.Close()
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { f.SetReadDeadline(time.Unix(1, 0)) })
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		// Ready once it has bytes, or its writer has ended (POLLHUP,
		// which Linux holds back until a writer has come).
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, 0)
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			if err != nil {
				perr = err
				return true
			}
			return n > 0
		}
	})
	if err == nil {
		err = perr
	}
	// stop false: ctx ended and the deadline is set (or being set), even
	// if the writer came first; the file would then fail its first Read
	// with a timeout, which says nothing of the cause. ctx's error does.
	if !stop() && err == nil {
		err = ctx.Err()
	}
	if err != nil {
		f.Close()
		if cerr := ctx.Err(); cerr != nil {
			return nil, cerr
		}
		return nil, err
	}
	// Should ctx end from here on, no deadline is set: a caller whose
	// reads must end with ctx (relocate's readCtx) sets its own.
	return f, nil
}
