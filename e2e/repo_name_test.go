package e2e

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// A --to-repo whose path has a component the distribution grammar forbids
// is a usage error before any request: go-containerregistry checks only the
// characters, so these used to pass a dry run and fail at the first upload
// with a bare 404.
func TestToRepoWithAComponentTheGrammarForbidsIsAUsageError(t *testing.T) {
	src := testregistry.NewDistribution(t)
	dst := testregistry.NewDistribution(t)
	img := seedImage(t, src, "src/app", 1)
	archive := filepath.Join(t.TempDir(), "app.tar.zst")
	mustFerry(t, "export", "-i", img.String(), "-o", archive)
	src.ResetCounts()

	host := strings.TrimPrefix(strings.TrimPrefix(dst.URL, "https://"), "http://")
	for _, tc := range []struct{ repo, want string }{
		{host + "/-a/r", `path component "-a"`},
		{host + "/a.-b/c", `path component "a.-b"`},
		{host + "/a/r.", `path component "r."`},
		{host + "/a//b", `path component ""`},
		{host + "/a/r:v1", "not a tag"},
		{host + "/a/r@" + img.DigestStr(), "not a digest"},
		{host, "names a registry but no repository"},
	} {
		for _, args := range [][]string{
			{"import", "-f", archive, "--to-repo", tc.repo},
			{"import", "-f", archive, "--to-repo", tc.repo, "--dry-run"},
			{"copy", "-i", img.String(), "--to-repo", tc.repo},
			{"copy", "-i", img.String(), "--to-repo", tc.repo, "--dry-run"},
		} {
			r := ferry(t, nil, args...)
			if r.Code != 2 || !strings.Contains(r.Stderr, tc.want) || !strings.Contains(r.Stderr, tc.repo) {
				t.Errorf("ferry %s: want a usage error (exit 2) naming %q and %s: %s", strings.Join(args, " "), tc.repo, tc.want, r)
			}
		}
	}
	if n := len(dst.Requests()); n != 0 {
		t.Errorf("the destination got %d requests, want none: %v", n, dst.Requests())
	}
	if n := len(src.Requests()); n != 0 {
		t.Errorf("the source got %d requests, want none: %v", n, src.Requests())
	}
}
