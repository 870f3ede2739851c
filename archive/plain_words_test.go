package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"regexp"
	"strconv"
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

// TestTruncatedArchiveSaysWhereItEnds: an archive cut short (plain tar or
// zstd) is said to be truncated in or after an entry, named with a short
// digest, at the byte where the given bytes end; the error matches
// ErrDamaged and io.ErrUnexpectedEOF.
func TestTruncatedArchiveSaysWhereItEnds(t *testing.T) {
	fx := newFixture(t, fixtureOptions{})
	for what, data := range map[string][]byte{
		"tar":  buildTar(t, fx.entries0()),
		"zstd": fx.write(t, WriterOptions{}, nil),
	} {
		cut := data[:len(data)/2]
		_, err := Verify(context.Background(), bytes.NewReader(cut))
		want := regexp.MustCompile(`^archive truncated (after|inside) entry blobs/sha256/[0-9a-f]{12} \(at byte ` +
			strconv.Itoa(len(cut)) + ` of the file, expected more\): the copy is incomplete`)
		if err == nil || !want.MatchString(err.Error()) || regexp.MustCompile(`[0-9a-f]{64}`).MatchString(err.Error()) {
			t.Errorf("%s cut short: %v\nwant it to match %s", what, err, want)
		}
		if !errors.Is(err, ErrDamaged) || !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("%s cut short: %v is not ErrDamaged and io.ErrUnexpectedEOF", what, err)
		}
	}
}
