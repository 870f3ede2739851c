package archive

import (
	"bytes"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestNewReaderErrorsCarryNoPackagePrefix: what is not an archive, or
// cannot be read, is said without "archive:" in front, and without the
// path again (the caller names it): a directory gives "cannot read it: is
// a directory", still matching syscall.EISDIR.
func TestNewReaderErrorsCarryNoPackagePrefix(t *testing.T) {
	_, err := NewReader(bytes.NewReader([]byte("hello, not an archive\n")), ReaderOptions{})
	if err == nil || err.Error() != "not a ferry archive: neither zstd, gzip nor a tar" {
		t.Errorf("junk: %v", err)
	}
	dir := t.TempDir()
	f, err := os.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	_, err = NewReader(f, ReaderOptions{})
	if err == nil || err.Error() != "cannot read it: is a directory" || !errors.Is(err, syscall.EISDIR) {
		t.Errorf("a directory: %v", err)
	}
	_, err = NewReader(bytes.NewReader(nil), ReaderOptions{})
	if err == nil || strings.HasPrefix(err.Error(), "archive:") {
		t.Errorf("empty: %v", err)
	}
}
