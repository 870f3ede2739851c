package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestServeRefusesStreamsBelowOne: --streams 0 or -3 is a usage error
// (exit 2) naming the flag, not a silent 16.
func TestServeRefusesStreamsBelowOne(t *testing.T) {
	for _, n := range []string{"0", "-3"} {
		args := []string{"ferry", "serve", "--streams", n, "--addr", "127.0.0.1:0", "/no/such/archive.tar.zst"}
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--streams "+n) {
			t.Errorf("%v: exit %d, want 2 naming --streams %s\nstderr: %s", args, code, n, errOut.String())
		}
	}
}

// TestServeRefusesAStreamWaitNotPositive: --stream-wait 0 would answer
// every request that waits 429 at once; a usage error instead.
func TestServeRefusesAStreamWaitNotPositive(t *testing.T) {
	for _, d := range []string{"0s", "-1s"} {
		args := []string{"ferry", "serve", "--stream-wait", d, "--addr", "127.0.0.1:0", "/no/such/archive.tar.zst"}
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--stream-wait") {
			t.Errorf("%v: exit %d, want 2 naming --stream-wait\nstderr: %s", args, code, errOut.String())
		}
	}
}

// TestServeChecksTheAddressBeforeOpeningTheArchive: an address refused by
// the exposure policy is reported as such (exit 2) before the archive is
// read, so a file that is not an archive at all is never looked at.
func TestServeChecksTheAddressBeforeOpeningTheArchive(t *testing.T) {
	notArchive := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notArchive, []byte("not an archive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"ferry", "serve", "--addr", "0.0.0.0:0", notArchive}
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
	if code != 2 || !strings.Contains(errOut.String(), "beyond loopback") || strings.Contains(errOut.String(), "notes.txt") {
		t.Errorf("%v: exit %d, want 2 refusing the address before reading the file\nstderr: %s", args, code, errOut.String())
	}
}

// TestServeRefusesAMalformedAddress: an --addr that is not HOST:PORT with
// a port number is a usage error (exit 2) naming it, as the exposure
// policy's refusal of the same flag is, said before the archive (here not
// one at all) is read.
func TestServeRefusesAMalformedAddress(t *testing.T) {
	notArchive := filepath.Join(t.TempDir(), "notes.txt")
	if err := os.WriteFile(notArchive, []byte("not an archive\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, addr := range []string{"nonsense", "127.0.0.1:99999", "127.0.0.1:-1", "127.0.0.1:http", "127.0.0.1:", "[::1"} {
		args := []string{"ferry", "serve", "--addr", addr, notArchive}
		var out, errOut bytes.Buffer
		code := run(context.Background(), args, strings.NewReader(""), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--addr") || !strings.Contains(errOut.String(), addr) || strings.Contains(errOut.String(), "notes.txt") {
			t.Errorf("%v: exit %d, want 2 naming --addr %s before reading the file\nstderr: %s", args, code, addr, errOut.String())
		}
	}
}
