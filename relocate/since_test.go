package relocate

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The checksum file beside a --since base spares hashing it only when it
// states that file's own sum.
func TestSidecarSHA256OnlyForThatFile(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	for _, tc := range []struct {
		name, side string
		want       string
	}{
		{"text mode", sum + "  base.tar.zst\n", sum},
		{"binary mode", sum + " *base.tar.zst\n", sum},
		{"another file", sum + "  other.tar.zst\n", ""},
		{"volumes", sum + "  base.tar.zst.001\n" + other + "  base.tar.zst.002\n", ""},
		{"two lines, one ours", sum + "  base.tar.zst\n" + other + "  base.tar.zst.001\n", ""},
		{"not hex", strings.Repeat("zz", 32) + "  base.tar.zst\n", ""},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "base.tar.zst")
			if err := os.WriteFile(path+".sha256", []byte(tc.side), 0o644); err != nil {
				t.Fatal(err)
			}
			got, ok := sidecarSHA256(path)
			if got != tc.want || ok != (tc.want != "") {
				t.Errorf("sidecarSHA256 = %q, %v; want %q", got, ok, tc.want)
			}
		})
	}
	if _, ok := sidecarSHA256(filepath.Join(t.TempDir(), "none.tar.zst")); ok {
		t.Error("a sum from a checksum file that does not exist")
	}
}
