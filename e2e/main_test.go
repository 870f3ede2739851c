// Package e2e runs the real ferry binary, as a user would, against the CNCF
// distribution registry started in-process.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// ferryBin is the binary built once for the whole package by TestMain.
var ferryBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "ferry-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ferryBin = filepath.Join(dir, "ferry")
	args := []string{"build", "-o", ferryBin}
	if raceEnabled {
		args = append(args, "-race")
	}
	args = append(args, "../cmd/ferry")
	build := exec.Command("go", args...)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building ferry:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// result is what one run of the binary gave.
type result struct {
	Stdout, Stderr string
	Code           int
	// Elapsed is the process's wall time and MaxRSS its peak resident set
	// in bytes (-1 where the platform does not say), for the tests that
	// bound what a hostile input may cost.
	Elapsed time.Duration
	MaxRSS  int64
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\nstdout:\n%s\nstderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// ferry runs the binary with args in dir (a temp dir when empty) and an
// environment without any Docker config, so no host credentials leak in.
func ferry(t *testing.T, env []string, args ...string) result {
	t.Helper()
	return ferryIn(t, env, nil, args...)
}

// ferryIn is ferry with stdin as the process's standard input.
func ferryIn(t *testing.T, env []string, stdin io.Reader, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, ferryBin, args...)
	home := t.TempDir()
	cmd.Env = append([]string{
		"HOME=" + home,
		"DOCKER_CONFIG=" + filepath.Join(home, ".docker"),
		"PATH=" + os.Getenv("PATH"),
		"TMPDIR=" + os.TempDir(),
	}, env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr, cmd.Stdin = &stdout, &stderr, stdin
	start := time.Now()
	err := cmd.Run()
	elapsed := time.Since(start)
	code := 0
	if err != nil {
		ee, ok := err.(*exec.ExitError)
		if !ok {
			// Not t.Fatalf: a test may run ferry from goroutines of its own.
			t.Errorf("running ferry %s: %v", strings.Join(args, " "), err)
			return result{Stdout: stdout.String(), Stderr: stderr.String(), Code: -1, Elapsed: elapsed}
		}
		code = ee.ExitCode()
	}
	return result{Stdout: stdout.String(), Stderr: stderr.String(), Code: code, Elapsed: elapsed, MaxRSS: maxRSS(cmd.ProcessState)}
}

// mustFerry runs ferry and fails the test unless it exits 0.
func mustFerry(t *testing.T, args ...string) result {
	t.Helper()
	r := ferry(t, nil, args...)
	if r.Code != 0 {
		t.Fatalf("ferry %s: %s", strings.Join(args, " "), r)
	}
	return r
}

// repoRoot is the checkout's top directory.
func repoRoot(t *testing.T) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}
