package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"unicode/utf8"
	"unsafe"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/ferry-dev/ferry/fixtures"
)

// openPTY opens a pseudo-terminal: what a user's terminal is to ferry.
// Everything written to tty is read from master.
func openPTY(t *testing.T) (master, tty *os.File) {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening a pseudo-terminal: %v", err)
	}
	t.Cleanup(func() { master.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlocking the pseudo-terminal: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("naming the pseudo-terminal: %v", e)
	}
	tty, err = os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening the pseudo-terminal's side: %v", err)
	}
	if !term.IsTerminal(int(tty.Fd())) {
		t.Fatalf("%s is not a terminal", tty.Name())
	}
	return master, tty
}

// An archive asked for on standard output while that is a terminal is
// refused (exit 2) before anything is fetched: it would dump binary on the
// screen. The source is real and whole, so without the refusal the
// archive would be written there.
// pushedImage starts a registry (go-containerregistry's) holding a small
// image at HOST/src/app:1, and returns that reference and the image.
func pushedImage(t *testing.T) (name.Tag, v1.Image) {
	t.Helper()
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	img, err := fixtures.Image(1, 1, 4096)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.NewTag(strings.TrimPrefix(srv.URL, "http://") + "/src/app:1")
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	return ref, img
}

func TestArchiveToATerminalIsRefused(t *testing.T) {
	ref, img := pushedImage(t)
	host := ref.RegistryStr()
	d, _ := img.Digest()
	dir := filepath.Join(t.TempDir(), "bundle")
	if err := fixtures.WriteBundleDir(dir, []string{ref.Context().Digest(d.String()).String()}); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"export", "-i", ref.String(), "-o", "-"},
		{"copy", "-i", ref.String(), "--to-tar", "-"},
		{"push", "-b", host + "/src/bundle:1", "-f", dir, "--to-tar", "-"},
	} {
		master, tty := openPTY(t)
		shown := make(chan int)
		go func() {
			n, _ := io.Copy(io.Discard, master)
			shown <- int(n)
		}()
		var errOut bytes.Buffer
		code := run(context.Background(), append([]string{"ferry"}, args...), strings.NewReader(""), tty, &errOut)
		tty.Close()
		n := <-shown
		if code != 2 || !strings.Contains(errOut.String(), "standard output, which is a terminal") || n != 0 {
			t.Errorf("ferry %s to a terminal: exit %d, %d bytes on the terminal, want exit 2 and none\nstderr: %s", strings.Join(args, " "), code, n, errOut.String())
		}
	}
}

// `inventory -o -` on a terminal: the document starts on a line of its
// own, after the spinner that named the walk is cleared, rather than glued
// to it (and later redrawn over).
func TestInventoryToATerminalClearsTheSpinnerFirst(t *testing.T) {
	ref, _ := pushedImage(t)
	repo := ref.Context().String()
	master, tty := openPTY(t)
	shown := make(chan string)
	go func() {
		b, _ := io.ReadAll(master)
		shown <- string(b)
	}()
	code := run(context.Background(), []string{"ferry", "inventory", "--repo", repo, "-o", "-"}, strings.NewReader(""), tty, tty)
	tty.Close()
	screen := <-shown
	at := strings.Index(screen, "{")
	if code != 0 || at < 0 || !strings.Contains(screen, `"mediaType"`) {
		t.Fatalf("inventory -o - on a terminal: exit %d, screen %q", code, screen)
	}
	if at > 0 && screen[at-1] != '\r' && screen[at-1] != '\n' {
		t.Errorf("the document starts after %q, on the spinner's line, not on one of its own", screen[max(0, at-40):at])
	}
}

// The spinner is fitted to the width of the terminal ferry writes to, read
// from its descriptor: the bar library could not read it through the
// writer ferry gives it, and a line wider than the terminal wrapped, each
// redraw leaving a row behind.
func TestSpinnerFitsTheTerminalItIsDrawnOn(t *testing.T) {
	ref, _ := pushedImage(t)
	repo := ref.Context().String()
	master, tty := openPTY(t)
	const cols = 40
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 24, Col: cols}); err != nil {
		t.Fatal(err)
	}
	shown := make(chan string)
	go func() {
		b, _ := io.ReadAll(master)
		shown <- string(b)
	}()
	var stdout bytes.Buffer
	code := run(context.Background(), []string{"ferry", "inventory", "--repo", repo, "-o", filepath.Join(t.TempDir(), "have.json")}, strings.NewReader(""), &stdout, tty)
	tty.Close()
	screen := <-shown
	drawn := 0
	for _, l := range drawnLines(screen) {
		if !strings.HasPrefix(l, "⠋ ") {
			continue // the summary, whose lines a terminal wraps as text
		}
		drawn++
		if n := utf8.RuneCountInString(l); n >= cols {
			t.Errorf("a spinner line of %d columns on a terminal of %d: %q", n, cols, l)
		}
	}
	if code != 0 || drawn == 0 {
		t.Errorf("inventory on a terminal: exit %d, %d spinner lines drawn, screen %q", code, drawn, screen)
	}
}
