package pull

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// imgpkg's pull takes a 401 or 403 like a 404 where it looks for the
// locations image (LocationsConfigs.Fetch) and where it checks that the
// lock's images are in the bundle's repository (ImageRefs.imageIsNotFound):
// a registry that hides what the puller may not read is a registry where
// the bundle was not relocated. ferry used to fail the pull. Any other
// failure still fails it.
func TestPullTakesAuthErrorsAsNotFoundWhereImgpkgDoes(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	proxy := testregistry.NewFaultProxy(t, reg)
	opts := proxy.RemoteOptions(t)
	repo := proxy.Repo("team/app")
	app := seedApp(t, repo, opts)
	lockDoc := "apiVersion: imgpkg.carvel.dev/v1alpha1\nkind: ImagesLock\nimages:\n- image: " + repo + "@" + app.String() + "\n"
	ref := pushBundleFiles(t, repo+":bundle", map[string]string{".imgpkg/images.yml": lockDoc}, nil, opts)
	locations := regexp.MustCompile(`/manifests/sha256-[0-9a-f]{64}\.image-locations\.imgpkg$`)
	image := regexp.MustCompile(`/manifests/` + app.String() + `$`)

	for _, tc := range []struct {
		name    string
		rule    testregistry.Rule
		rewrite Rewrite // "" when the pull must fail
	}{
		{"locations image 401", testregistry.Rule{Path: locations, Fault: testregistry.FaultStatus, Status: http.StatusUnauthorized}, RewriteChecked},
		{"locations image 403", testregistry.Rule{Path: locations, Fault: testregistry.FaultStatus, Status: http.StatusForbidden}, RewriteChecked},
		{"locations image 400", testregistry.Rule{Path: locations, Fault: testregistry.FaultStatus, Status: http.StatusBadRequest}, ""},
		{"image check 401", testregistry.Rule{Method: http.MethodHead, Path: image, Fault: testregistry.FaultStatus, Status: http.StatusUnauthorized}, RewriteNone},
		{"image check 403", testregistry.Rule{Method: http.MethodHead, Path: image, Fault: testregistry.FaultStatus, Status: http.StatusForbidden}, RewriteNone},
		{"image check 400", testregistry.Rule{Method: http.MethodHead, Path: image, Fault: testregistry.FaultStatus, Status: http.StatusBadRequest}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			proxy.SetRules(tc.rule)
			defer proxy.SetRules()
			out := filepath.Join(t.TempDir(), "out")
			res, err := Pull(context.Background(), ref, out, Options{Bundle: true, Remote: opts})
			if tc.rewrite == "" {
				if err == nil || !strings.Contains(err.Error(), "injected fault") && !strings.Contains(err.Error(), fmt.Sprint(tc.rule.Status)) {
					t.Fatalf("pull: %v; want the registry's failure", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if hits := proxy.Hits(); hits[0] == 0 {
				t.Fatal("the fault was never served")
			}
			if res.Rewrite != tc.rewrite {
				t.Errorf("rewrite %q, want %q", res.Rewrite, tc.rewrite)
			}
			got, err := os.ReadFile(filepath.Join(out, ".imgpkg", "images.yml"))
			if err != nil {
				t.Fatal(err)
			}
			if changed := string(got) != lockDoc; changed != (tc.rewrite != RewriteNone) {
				t.Errorf("images.yml:\n%s\nrewritten %v, want %v", got, changed, tc.rewrite != RewriteNone)
			}
		})
	}
}
