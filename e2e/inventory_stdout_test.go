package e2e

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

// `inventory -o -` writes the document on stdout (for ssh … > have.json),
// the same as -o FILE writes, and leaves no file named "-"; with --json,
// whose result also goes to stdout, it is refused.
func TestInventoryToStandardOutput(t *testing.T) {
	_, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)

	dir := t.TempDir()
	file := filepath.Join(dir, "have.json")
	mustFerry(t, "inventory", "--repo", repo, "-o", file)
	// ferry runs in the test's directory, where a file "-" would land.
	r := ferry(t, nil, "inventory", "--repo", repo, "-o", "-")
	if r.Code != 0 {
		t.Fatalf("inventory -o -: %s", r)
	}
	if _, err := os.Stat("-"); err == nil {
		os.Remove("-")
		t.Error(`inventory -o - wrote a file named "-"`)
	}
	onDisk, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	var a, b map[string]any
	if err := json.Unmarshal(onDisk, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(r.Stdout), &b); err != nil {
		t.Fatalf("stdout is not the inventory: %v\n%s", err, r.Stdout)
	}
	delete(a, "created")
	delete(b, "created")
	if ja, jb := mustMarshal(t, a), mustMarshal(t, b); ja != jb {
		t.Fatalf("stdout's inventory differs from the file's:\n%s\n%s", jb, ja)
	}
	if r := ferry(t, nil, "inventory", "--repo", repo, "-o", "-", "--json"); r.Code != 2 {
		t.Fatalf("inventory -o - --json: %s", r)
	}
}

func mustMarshal(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
