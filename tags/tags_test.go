package tags_test

import (
	"crypto/sha256"
	"fmt"
	"regexp"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/ferry-dev/ferry/tags"
)

// validTag is the distribution spec's tag grammar.
var validTag = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)

// The digest of imgpkg's own repo-based tag tests
// (pkg/imgpkg/internal/util/tag_generator_test.go).
const imgpkgHex = "61cb2e3a8522bfd9d4b6219cb9e382df151ba6d4fcc4c96f870ee4e1cffbbf9c"

func hash(t *testing.T, hex string) v1.Hash {
	t.Helper()
	h, err := v1.NewHash("sha256:" + hex)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestImgpkgAndImageLocations(t *testing.T) {
	// Tags imgpkg wrote for the golden bundle (fixtures/golden/README.md).
	bundle := hash(t, "1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922")
	if got, want := tags.Imgpkg(bundle), "sha256-1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922.imgpkg"; got != want {
		t.Errorf("Imgpkg = %q, want %q", got, want)
	}
	if got, want := tags.ImageLocations(bundle), "sha256-1dd1fe82d28c36e0cd1a72e97295ba91f1c9b705249fecbd9a99a84668c09922.image-locations.imgpkg"; got != want {
		t.Errorf("ImageLocations = %q, want %q", got, want)
	}

	// Any digest: built from bytes we hash ourselves.
	sum := sha256.Sum256([]byte("ferry"))
	h := hash(t, fmt.Sprintf("%x", sum))
	if got, want := tags.Imgpkg(h), fmt.Sprintf("sha256-%x.imgpkg", sum); got != want {
		t.Errorf("Imgpkg = %q, want %q", got, want)
	}
	for _, tag := range []string{tags.Imgpkg(h), tags.ImageLocations(h)} {
		if !validTag.MatchString(tag) {
			t.Errorf("%q is not a valid tag", tag)
		}
	}
}

func TestRepoBased(t *testing.T) {
	h := hash(t, imgpkgHex)
	tail := "-sha256-" + imgpkgHex + ".imgpkg"
	x44, x48 := strings.Repeat("x", 44), strings.Repeat("x", 48)
	for _, tc := range []struct {
		name, path, want string
	}{
		{"simple", "library/nginx", "library-nginx" + tail},
		{"single element", "app", "app" + tail},
		{"empty path", "", "sha256-" + imgpkgHex + ".imgpkg"},
		{"deep path", "a/b/c/d/e/f", "a-b-c-d-e-f" + tail},
		{"characters outside the set dropped", "My_Org/app+v2~rc/x y", "My_Org-appv2rc-xy" + tail},
		{"allowed punctuation kept", "a.b_c-d/e", "a.b_c-d-e" + tail},
		{"exactly 49 characters kept whole", "team/" + x44, "team-" + x44 + tail},
		{"50 characters lose the first", "teams/" + x44, "eams-" + x44 + tail},
		{"leading dash after the cut dropped", "ab/-" + x48, x48 + tail},
		{"several leading dashes after the cut dropped", "abc/" + strings.Repeat("-", 5) + strings.Repeat("y", 44), strings.Repeat("y", 44) + tail},
		{"leading dot after the cut dropped (imgpkg)", "ab/." + x48, x48 + tail},
		{"leading dash without a cut dropped", "-lead/app", "lead-app" + tail},
		{"leading underscore kept", "_under/app", "_under-app" + tail},
		{"only separators", "///", "sha256-" + imgpkgHex + ".imgpkg"},
		{"unicode dropped", "équipe/café", "quipe-caf" + tail},
		{"unicode does not count towards 49", "ab" + strings.Repeat("é", 10) + strings.Repeat("z", 47), "ab" + strings.Repeat("z", 47) + tail},
		{"unicode leaves a leading dash", strings.Repeat("ü", 60) + "/app", "app" + tail},
		{"cut counts after dropping", "k" + strings.Repeat("%", 10) + x48, "k" + x48 + tail},

		// imgpkg's own expectations (tag_generator_test.go), with the host
		// removed from the reference as imgpkg does.
		{"imgpkg: starts with _", "_test-repo/simple-app-test", "_test-repo-simple-app-test" + tail},
		{"imgpkg: starts with *-", "*-test-repo/simple-app-test", "test-repo-simple-app-test" + tail},
		{"imgpkg: starts with .", ".test-repo/simple-app-test", "test-repo-simple-app-test" + tail},
		{"imgpkg: long path", "test-path/sample-path/verification-path/sample-path/test-repo/test-repo/simple-app-test",
			"h-sample-path-test-repo-test-repo-simple-app-test" + tail},
		{"imgpkg: long path with specials", "tes%t-path/sample-path/verific&*ation-path*&^%$/sample-pa(th/test-repo/t)est-repo/simple-app-test",
			"h-sample-path-test-repo-test-repo-simple-app-test" + tail},
		{"imgpkg: 121 characters", "test-path/dev-pkg-apiextensions-storageversion-cmd-migratee",
			"dev-pkg-apiextensions-storageversion-cmd-migratee" + tail},
		{"imgpkg: 121 characters starting with .", "test-path/.dev-pkg-apiextensions-storageversion-cmd-migrate",
			"dev-pkg-apiextensions-storageversion-cmd-migrate" + tail},
		{"imgpkg: 121 characters starting with _", "test-path/_dev-pkg-apiextensions-storageversion-cmd-migrate",
			"_dev-pkg-apiextensions-storageversion-cmd-migrate" + tail},
		{"imgpkg: cut", "test-path/dev-pkg-apiextensions-storageversion-cmd-migrate-test-image",
			"iextensions-storageversion-cmd-migrate-test-image" + tail},
		{"imgpkg: cut at .", "test-path/dev-pkg-ap.extensions-storageversion-cmd-migrate-test-image",
			"extensions-storageversion-cmd-migrate-test-image" + tail},
		{"imgpkg: cut at _", "test-path/dev-pkg-api_extensions-storageversion-cmd-migrate-test-image",
			"_extensions-storageversion-cmd-migrate-test-image" + tail},
		{"imgpkg: cut at -", "test-path/dev-pkg-api-extensions-storageversion-cmd-migrate-test-image",
			"extensions-storageversion-cmd-migrate-test-image" + tail},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := tags.RepoBased(tc.path, h)
			if got != tc.want {
				t.Errorf("RepoBased(%q) =\n  %q\nwant\n  %q", tc.path, got, tc.want)
			}
			if len(got) > tags.MaxLen || !validTag.MatchString(got) {
				t.Errorf("RepoBased(%q) = %q (%d characters) is not a valid tag", tc.path, got, len(got))
			}
		})
	}
	if got := tags.RepoBased("team/"+x44, h); len(got) != tags.MaxLen {
		t.Errorf("a 49-character path gives %d characters, want exactly %d", len(got), tags.MaxLen)
	}
}

// FuzzRepoBased checks the invariants that keep a registry from refusing the
// tag, whatever the source path.
func FuzzRepoBased(f *testing.F) {
	for _, s := range []string{"", "library/nginx", "-", "./.", "é/ü", strings.Repeat("ab/", 40)} {
		f.Add(s)
	}
	h, _ := v1.NewHash("sha256:" + imgpkgHex)
	f.Fuzz(func(t *testing.T, path string) {
		got := tags.RepoBased(path, h)
		if len(got) > tags.MaxLen || !validTag.MatchString(got) {
			t.Fatalf("RepoBased(%q) = %q is not a valid tag", path, got)
		}
		if !strings.HasSuffix(got, tags.Imgpkg(h)) || !tags.IsInternal(got) {
			t.Fatalf("RepoBased(%q) = %q does not end in the imgpkg tag", path, got)
		}
	})
}

func TestIsInternal(t *testing.T) {
	hex := imgpkgHex
	for _, tc := range []struct {
		tag  string
		want bool
	}{
		{"v1", false},
		{"latest", false},
		{"1.0.0-imgpkg", false},
		{"imgpkg", false},
		{"sha256-" + hex + ".imgpkg", true},
		{"sha256-" + hex + ".image-locations.imgpkg", true},
		{"library-nginx-sha256-" + hex + ".imgpkg", true},
		{"anything.imgpkg", true}, // imgpkg's tag list hides every such tag
		{"sha256-" + hex + ".sig", true},
		{"sha256-" + hex + ".att", true},
		{"sha256-" + hex + ".sbom", true},
		{"sha256-" + hex + ".sig.bak", false},
		{"sha256-" + hex + ".sigs", false},
		{"sha256-" + hex, false},
		{"sha256-" + hex[:63] + ".sig", false},
		{"sha256-" + strings.ToUpper(hex) + ".sig", false},
		{"sha512-" + hex + hex + ".sig", false},
		{"v1.sig", false},
		{"release.att", false},
	} {
		if got := tags.IsInternal(tc.tag); got != tc.want {
			t.Errorf("IsInternal(%q) = %v, want %v", tc.tag, got, tc.want)
		}
	}
}

func TestNamesADigest(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	for tag, want := range map[string]bool{
		tags.Imgpkg(d):                                 true,
		tags.ImageLocations(d):                         true,
		tags.RepoBased("apps/backend", d):              true,
		"sha256-" + d.Hex + ".sig":                     true,
		"sha256-" + d.Hex + ".att":                     true,
		"sha256-" + d.Hex + ".sbom":                    true,
		"sha256-" + d.Hex:                              true,
		"sha256-" + d.Hex[:63]:                         false,
		"apps-sha256-" + d.Hex:                         false,
		"v1":                                           false,
		"v1.imgpkg":                                    false,
		"latest.image-locations.imgpkg":                false,
		"sha256-" + d.Hex[:63] + ".imgpkg":             false,
		"sha256-" + strings.ToUpper(d.Hex) + ".imgpkg": false,
		"xsha256-" + d.Hex + ".imgpkg":                 false,
		"sha256-" + d.Hex + ".imgpkg.v2":               false,
	} {
		if got := tags.NamesADigest(tag); got != want {
			t.Errorf("NamesADigest(%q) = %v, want %v", tag, got, want)
		}
	}
}

func TestIsImgpkgOf(t *testing.T) {
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("ab", 32)}
	other := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat("cd", 32)}
	for tag, want := range map[string]bool{
		"sha256-" + d.Hex + ".imgpkg":                  true,
		"apps-backend-sha256-" + d.Hex + ".imgpkg":     true,
		"sha256-" + other.Hex + ".imgpkg":              false,
		"apps-backend-sha256-" + other.Hex + ".imgpkg": false,
		"sha256-" + d.Hex + ".image-locations.imgpkg":  false,
		"sha256-" + d.Hex + ".sig":                     false,
		"xsha256-" + d.Hex + ".imgpkg":                 false,
		"v1":                                           false,
		"apps-backend-sha256-" + d.Hex + ".imgpkg.v2":  false,
		"sha256-" + strings.ToUpper(d.Hex) + ".imgpkg": false,
	} {
		if got := tags.IsImgpkgOf(tag, d); got != want {
			t.Errorf("IsImgpkgOf(%q, %s) = %v, want %v", tag, d, got, want)
		}
	}
}
