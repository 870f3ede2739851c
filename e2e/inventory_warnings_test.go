package e2e

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// A repository holding a Docker schema 1 manifest under two tags (an old
// far-side registry) is inventoried: exit 0, the manifest listed, and one
// warning naming it on stderr (not two, one per tag); none with -q; with
// --json the result on stdout stays JSON and the warning goes to stderr.
func TestInventoryWarnsOnceOfAManifestItCannotRead(t *testing.T) {
	reg := testregistry.NewGGCR(t)
	img := seedImage(t, reg, "far/app", 1)
	repo := img.Context()
	schema1 := []byte(`{"schemaVersion":1,"name":"far/app","tag":"old","architecture":"amd64","fsLayers":[],"history":[]}`)
	schema1Digest := fmt.Sprintf("sha256:%x", sha256.Sum256(schema1))
	for _, tag := range []string{"old", "old-again"} {
		if err := remote.Put(repo.Tag(tag), rawManifest{schema1, types.DockerManifestSchema1}, reg.RemoteOptions(t)...); err != nil {
			t.Fatal(err)
		}
	}
	warnings := func(stderr string) []string {
		var out []string
		for _, l := range strings.Split(stderr, "\n") {
			if strings.HasPrefix(l, "warning: ") {
				out = append(out, l)
			}
		}
		return out
	}
	checkWarned := func(how string, r result) {
		t.Helper()
		if w := warnings(r.Stderr); len(w) != 1 || !strings.Contains(w[0], repo.String()) || !strings.Contains(w[0], schema1Digest) || !strings.Contains(w[0], "schema 1") {
			t.Errorf("%s: warnings %q, want one naming %s in %s and schema 1\n%s", how, w, schema1Digest, repo, r)
		}
	}
	listed := func(how string, manifests []string) {
		t.Helper()
		want := map[string]bool{img.DigestStr(): true, schema1Digest: true}
		got := map[string]bool{}
		for _, d := range manifests {
			got[d] = true
		}
		if len(got) != len(want) || !got[img.DigestStr()] || !got[schema1Digest] {
			t.Errorf("%s: manifests %v, want %v", how, manifests, want)
		}
	}

	file := filepath.Join(t.TempDir(), "have.json")
	r := mustFerry(t, "inventory", "--repo", repo.String(), "-o", file)
	checkWarned("inventory", r)
	var doc struct {
		Repositories []struct {
			Manifests []struct {
				Digest string `json:"digest"`
			} `json:"manifests"`
		} `json:"repositories"`
	}
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &doc); err != nil || len(doc.Repositories) != 1 {
		t.Fatalf("inventory file: %v\n%s", err, raw)
	}
	var manifests []string
	for _, m := range doc.Repositories[0].Manifests {
		manifests = append(manifests, m.Digest)
	}
	listed("inventory file", manifests)

	if r := mustFerry(t, "inventory", "-q", "--repo", repo.String(), "-o", file); r.Stderr != "" {
		t.Errorf("inventory -q printed on stderr:\n%s", r)
	}

	r = mustFerry(t, "inventory", "--json", "--repo", repo.String(), "-o", file)
	checkWarned("inventory --json", r)
	var j struct {
		Repositories []struct {
			Repository string `json:"repository"`
			Manifests  int    `json:"manifests"`
		} `json:"repositories"`
	}
	if err := json.Unmarshal([]byte(r.Stdout), &j); err != nil || len(j.Repositories) != 1 || j.Repositories[0].Manifests != 2 {
		t.Errorf("inventory --json: stdout %v, want one repository of 2 manifests\n%s", err, r)
	}
}
