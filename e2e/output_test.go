package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/ferry-dev/ferry/internal/testregistry"
)

var fullHex = regexp.MustCompile(`[0-9a-f]{64}`)

// assertNoControls fails if out holds a control character: without a
// terminal, ferry draws no bar and sends no escape sequence.
func assertNoControls(t *testing.T, what, out string) {
	t.Helper()
	for _, r := range out {
		if r < 0x20 && r != '\n' {
			t.Errorf("%s holds control character %q:\n%s", what, r, out)
			return
		}
	}
}

// heartbeatLine matches a line ferry prints without a terminal every 5 s
// while work is under way (cmd/ferry/output.go, heartbeatLine): what is
// under way and for how long, or the bytes done, of how many, and the rate.
var heartbeatLine = regexp.MustCompile(`^[a-z][^\n]*(?: \((?:\d+ms|[0-9.]+s|\d+m\d\ds|\d+h\d\dm\d\ds)\)|: [0-9.]+ [KMGTPE]?i?B(?: of [0-9.]+ [KMGTPE]?i?B \(\d+%\))?, (?:[0-9.]+ [KMGTPE]?i?B/s|-))$`)

// withoutHeartbeats is stderr without the heartbeat's lines: a run slowed
// down past 5 s (a loaded machine) prints them before its summary, which
// the checks of the summary are not about.
func withoutHeartbeats(stderr string) string {
	var b strings.Builder
	for _, l := range strings.SplitAfter(stderr, "\n") {
		if !heartbeatLine.MatchString(strings.TrimSuffix(l, "\n")) {
			b.WriteString(l)
		}
	}
	return b.String()
}

// assertRelocationSummary checks the human summary of an import or a copy
// (stderr, no terminal): a first line naming the destination repository,
// lines of at most 80 columns without a full digest, then one table listing
// every tag of want exactly once with its action and short digest. The
// source registry is named nowhere: nothing was written there. Heartbeat
// lines are no part of the summary.
func assertRelocationSummary(t *testing.T, stderr, verb, repo, srcHost, action string, want map[string]string) {
	t.Helper()
	assertNoControls(t, "the summary", stderr)
	stderr = withoutHeartbeats(stderr)
	if strings.Contains(stderr, srcHost) {
		t.Errorf("the summary names the source registry %s:\n%s", srcHost, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
	if !strings.HasPrefix(lines[0], verb+" into "+repo+" in ") {
		t.Errorf("first line %q does not say %q", lines[0], verb+" into "+repo)
	}
	seen := map[string]int{}
	inTable := false
	for _, l := range lines {
		f := strings.Fields(l)
		switch {
		case len(f) == 3 && f[0] == "ACTION" && f[1] == "TAG" && f[2] == "DIGEST":
			inTable = true
		case inTable:
			if len(f) != 3 {
				t.Errorf("tag row %q is not ACTION TAG DIGEST", l)
				continue
			}
			seen[f[1]]++
			d, ok := want[f[1]]
			if !ok {
				t.Errorf("tag row for unexpected tag %q", f[1])
				continue
			}
			if f[0] != action || f[2] != d[:len("sha256:")+12] {
				t.Errorf("tag row %q, want %s %s %s", l, action, f[1], d[:len("sha256:")+12])
			}
		default:
			if n := utf8.RuneCountInString(l); n > 80 {
				t.Errorf("line of %d columns (at most 80 outside the tag table): %q", n, l)
			}
			if fullHex.MatchString(l) {
				t.Errorf("line outside the tag table carries a full digest: %q", l)
			}
			for _, w := range f {
				if _, ok := want[w]; ok {
					t.Errorf("tag %s named outside the tag table: %q", w, l)
				}
			}
		}
	}
	for tag := range want {
		if seen[tag] != 1 {
			t.Errorf("tag %s is listed %d times in the table, want once:\n%s", tag, seen[tag], stderr)
		}
	}
}

func TestImportAndCopySummariesNameTheDestinationAndEachTagOnce(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	want := f.wantTags(t)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")

	r := mustFerry(t, "export", "-b", f.root, "-o", archive)
	assertNoControls(t, "export's summary", r.Stderr)
	if !strings.HasPrefix(withoutHeartbeats(r.Stderr), "Exported into "+archive+" in ") {
		t.Errorf("export's summary does not start by naming the archive:\n%s", r.Stderr)
	}
	if sum := fileSHA256(t, archive); !regexp.MustCompile(`(?m)^  sha256 +` + sum + `$`).MatchString(r.Stderr) {
		t.Errorf("export's summary does not give the archive's full sha256 %s:\n%s", sum, r.Stderr)
	}
	if !strings.Contains(r.Stderr, archive+".sha256") {
		t.Errorf("export's summary does not name the checksum file:\n%s", r.Stderr)
	}

	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	r = mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	assertRelocationSummary(t, r.Stderr, "Imported", repo, src.Host, "create", want)
	// The root bundle, the four images its images.yml locks (app1, app2,
	// the nested bundle, the index) and the one the nested bundle locks:
	// what export's summary calls its images.
	const images = 6
	if !strings.Contains(r.Stderr, fmt.Sprintf("\n  images     %d\n", images)) {
		t.Errorf("the summary does not count %d images:\n%s", images, r.Stderr)
	}
	// The archive's manifests and the two bundles' locations images.
	if !strings.Contains(r.Stderr, fmt.Sprintf("  manifests  %d pushed, 0 already there\n", len(f.allManifests)+2)) {
		t.Errorf("the summary does not count %d manifests pushed:\n%s", len(f.allManifests)+2, r.Stderr)
	}
	r = mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	assertRelocationSummary(t, r.Stderr, "Imported", repo, src.Host, "unchanged", want)
	// Every blob and manifest there, the locations images' (a config and a
	// layer each) included.
	if !strings.Contains(r.Stderr, fmt.Sprintf("  blobs      0 uploaded (0 B), %d already there", len(f.allBlobs)+4)) ||
		!strings.Contains(r.Stderr, fmt.Sprintf("  manifests  0 pushed, %d already there\n", len(f.allManifests)+2)) {
		t.Errorf("the second import's summary does not say every blob and manifest was there:\n%s", r.Stderr)
	}

	copied := dst.Repo("far/copied")
	r = mustFerry(t, "copy", "-b", f.root, "--to-repo", copied)
	assertRelocationSummary(t, r.Stderr, "Copied", copied, src.Host, "create", want)
	if !strings.Contains(r.Stderr, fmt.Sprintf("\n  images     %d\n", images)) {
		t.Errorf("the copy's summary does not count %d images:\n%s", images, r.Stderr)
	}
}

// TestExportSummarySinceBasesFitsEightyColumns: export's summary with an
// archive base and an inventory base keeps every line within 80 columns (the
// user's own archive path aside) and prints no full digest but the archive's
// own sha256, which people compare; -v gives the bases' full sha256.
func TestExportSummarySinceBasesFitsEightyColumns(t *testing.T) {
	r := newReleases(t)
	dst := testregistry.NewDistribution(t)
	have := inventoryAfter(t, dst, r.v1Arch)
	dir := t.TempDir()
	delta := filepath.Join(dir, "delta.tar.zst")
	res := mustFerry(t, "export", "-b", r.v2, "-o", delta, "--since", r.v1Arch, "--since", have)
	assertNoControls(t, "export's summary", res.Stderr)
	own := "  sha256    " + fileSHA256(t, delta)
	sawOwn := false
	for _, l := range strings.Split(strings.TrimSuffix(withoutHeartbeats(res.Stderr), "\n"), "\n") {
		if l == own {
			sawOwn = true
			continue
		}
		if n := utf8.RuneCountInString(strings.ReplaceAll(l, dir+string(filepath.Separator), "")); n > 80 {
			t.Errorf("line of %d columns (at most 80, the archive's directory aside): %q", n, l)
		}
		if fullHex.MatchString(l) {
			t.Errorf("line carries a full digest: %q", l)
		}
	}
	if !sawOwn {
		t.Errorf("the summary does not give the archive's full sha256 as %q:\n%s", own, res.Stderr)
	}
	short := func(file string) string { return "sha256:" + fileSHA256(t, file)[:12] }
	for _, re := range []string{
		`(?m)^  since +archive v1\.tar\.zst \(` + short(r.v1Arch) + `\)$`,
		`(?m)^  since +inventory have\.json \(` + short(have) + `\)\n +taken \S+ of ` + regexp.QuoteMeta(dst.Repo("far/a")) + `$`,
	} {
		if !regexp.MustCompile(re).MatchString(res.Stderr) {
			t.Errorf("the summary does not match %s:\n%s", re, res.Stderr)
		}
	}

	res = mustFerry(t, "export", "-v", "-b", r.v2, "-o", filepath.Join(dir, "again.tar.zst"), "--since", r.v1Arch, "--since", have)
	for _, file := range []string{r.v1Arch, have} {
		if !strings.Contains(res.Stderr, "(sha256:"+fileSHA256(t, file)+")") {
			t.Errorf("-v does not give the full sha256 of %s:\n%s", file, res.Stderr)
		}
	}
}

func TestVerboseNamesEveryManifestAndTagAtTheDestination(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")
	mustFerry(t, "export", "-b", f.root, "-o", archive)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")

	r := mustFerry(t, "import", "-v", "-f", archive, "--to-repo", repo)
	pushed := map[string]bool{}
	tagged := map[string]bool{}
	for _, l := range strings.Split(r.Stderr, "\n") {
		if m := regexp.MustCompile(`^pushed manifest (\S+)@(sha256:[0-9a-f]{64})$`).FindStringSubmatch(l); m != nil {
			if m[1] != repo {
				t.Errorf("manifest line names %s, not the destination %s: %q", m[1], repo, l)
			}
			pushed[m[2]] = true
		}
		if m := regexp.MustCompile(`^tagged (\S+):([^:\s]+) \((sha256:[0-9a-f]{64})\)$`).FindStringSubmatch(l); m != nil {
			if m[1] != repo {
				t.Errorf("tag line names %s, not the destination %s: %q", m[1], repo, l)
			}
			tagged[m[2]+"@"+m[3]] = true
		}
	}
	for d := range f.allManifests {
		if !pushed[d] {
			t.Errorf("no verbose line for manifest %s:\n%s", d, r.Stderr)
		}
	}
	for tag, d := range f.wantTags(t) {
		if !tagged[tag+"@"+d] {
			t.Errorf("no verbose line for tag %s -> %s:\n%s", tag, d, r.Stderr)
		}
	}
	if strings.Contains(r.Stderr, src.Host) {
		t.Errorf("the verbose import names the source registry %s:\n%s", src.Host, r.Stderr)
	}

	// --quiet: errors only.
	r = mustFerry(t, "import", "-q", "-f", archive, "--to-repo", dst.Repo("far/quiet"))
	if r.Stderr != "" || r.Stdout != "" {
		t.Errorf("a quiet import printed:\n%s", r)
	}
	if r := ferry(t, nil, "import", "-q", "-v", "-f", archive, "--to-repo", repo); r.Code != 2 {
		t.Errorf("-q with -v: want a usage error: %s", r)
	}
}

// decodeStrict decodes the --json output of a command into v, refusing a
// field v does not declare, and checks that every field in required is
// present: together they pin the schema the README documents.
func decodeStrict(t *testing.T, what, out string, v any, required ...string) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Errorf("%s --json: %v\n%s", what, err, out)
		return
	}
	var raw any
	json.Unmarshal([]byte(out), &raw)
	obj, ok := raw.(map[string]any)
	if list, isList := raw.([]any); isList && len(list) > 0 {
		obj, ok = list[0].(map[string]any)
	}
	if !ok {
		t.Errorf("%s --json is not an object or a list of objects:\n%s", what, out)
		return
	}
	for _, k := range required {
		if _, ok := obj[k]; !ok {
			t.Errorf("%s --json lacks %q:\n%s", what, k, out)
		}
	}
}

// The --json schemas, as the README documents them.
type (
	exportJSONSchema struct {
		Archive       string   `json:"archive"`
		SHA256        string   `json:"sha256"`
		Images        int      `json:"images"`
		Blobs         int      `json:"blobs"`
		Bytes         int64    `json:"bytes"`
		ArchiveBytes  int64    `json:"archiveBytes"`
		SkippedLayers []string `json:"skippedLayers"`
		Volumes       []struct {
			Path   string `json:"path"`
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		} `json:"volumes"`
	}
	tagJSONSchema struct {
		Tag      string `json:"tag"`
		Digest   string `json:"digest"`
		Previous string `json:"previous"`
		Action   string `json:"action"`
	}
	importJSONSchema struct {
		Repository       string          `json:"repository"`
		Root             string          `json:"root"`
		Tag              string          `json:"tag"`
		Tags             []tagJSONSchema `json:"tags"`
		Images           int             `json:"images"`
		BlobsUploaded    int             `json:"blobsUploaded"`
		BytesUploaded    int64           `json:"bytesUploaded"`
		BlobsMounted     int             `json:"blobsMounted"`
		BytesMounted     int64           `json:"bytesMounted"`
		BlobsPresent     int             `json:"blobsPresent"`
		BytesPresent     int64           `json:"bytesPresent"`
		ManifestsPushed  int             `json:"manifestsPushed"`
		ManifestsPresent int             `json:"manifestsPresent"`
		DryRun           bool            `json:"dryRun"`
		Unchecked        []string        `json:"unchecked"`
	}
	inspectJSONSchema struct {
		Format  string `json:"format"`
		Volumes []struct {
			Path  string `json:"path"`
			Bytes int64  `json:"bytes"`
		} `json:"volumes"`
		Compression   string `json:"compression"`
		FormatVersion int    `json:"formatVersion"`
		CreatedBy     string `json:"createdBy"`
		Images        []struct {
			Digest      string   `json:"digest"`
			MediaType   string   `json:"mediaType"`
			Role        string   `json:"role"`
			OriginalRef string   `json:"originalRef"`
			Tag         string   `json:"tag"`
			Subject     string   `json:"subject"`
			Platforms   []string `json:"platforms"`
			Size        int64    `json:"size"`
		} `json:"images"`
		Blobs         int      `json:"blobs"`
		Bytes         int64    `json:"bytes"`
		Manifests     int      `json:"manifests"`
		ManifestBytes int64    `json:"manifestBytes"`
		SkippedLayers []string `json:"skippedLayers"`
		ImportTags    []string `json:"importTags"`
	}
	verifyJSONSchema struct {
		Archive string `json:"archive"`
		Format  string `json:"format"`
		SHA256  string `json:"sha256"`
		Volumes []struct {
			Path   string `json:"path"`
			Bytes  int64  `json:"bytes"`
			SHA256 string `json:"sha256"`
		} `json:"volumes"`
		Images       int    `json:"images"`
		Blobs        int    `json:"blobs"`
		Bytes        int64  `json:"bytes"`
		Bundles      int    `json:"bundles"`
		ChecksumFile string `json:"checksumFile"`
		SeekTable    string `json:"seekTable"`
		Verified     bool   `json:"verified"`
	}
	tagListJSONSchema []struct {
		Tag    string `json:"tag"`
		Digest string `json:"digest"`
	}
)

func TestJSONResultsKeepTheirDocumentedFields(t *testing.T) {
	src := testregistry.NewDistribution(t)
	f := newExportFixture(t, src)
	want := f.wantTags(t)
	archive := filepath.Join(t.TempDir(), "release.tar.zst")

	var exp exportJSONSchema
	r := mustFerry(t, "export", "-b", f.root, "-o", archive, "--json")
	decodeStrict(t, "export", r.Stdout, &exp, "archive", "sha256", "images", "blobs", "bytes", "archiveBytes")
	if exp.Archive != archive || "sha256:"+exp.SHA256 != "sha256:"+fileSHA256(t, archive) || exp.Blobs != len(f.allBlobs) {
		t.Errorf("export --json: %+v", exp)
	}

	var insp inspectJSONSchema
	r = mustFerry(t, "inspect", archive, "--json")
	decodeStrict(t, "inspect", r.Stdout, &insp, "format", "compression", "formatVersion", "images", "blobs", "bytes", "manifests", "manifestBytes", "importTags")
	if len(insp.Images) == 0 || insp.Images[0].Digest != f.rootDigest || insp.Images[0].Tag != "v1" || insp.Manifests != len(f.allManifests) {
		t.Errorf("inspect --json: %+v", insp)
	}

	var ver verifyJSONSchema
	r = mustFerry(t, "verify", archive, "--json")
	decodeStrict(t, "verify", r.Stdout, &ver, "archive", "format", "sha256", "images", "blobs", "bytes", "bundles", "verified")
	if !ver.Verified || ver.ChecksumFile != archive+".sha256" || ver.SeekTable != "checked" {
		t.Errorf("verify --json: %+v", ver)
	}

	// Split into volumes: each command lists them.
	split := filepath.Join(t.TempDir(), "split.tar.zst")
	r = mustFerry(t, "export", "-b", f.root, "-o", split, "--split-size", "20000", "--json")
	exp = exportJSONSchema{}
	decodeStrict(t, "export --split-size", r.Stdout, &exp, "archive", "sha256", "volumes")
	if len(exp.Volumes) < 2 || exp.Volumes[0].Path != split+".001" || exp.SHA256 != fileSHA256(t, archive) {
		t.Errorf("export --split-size --json: %+v", exp)
	}
	insp = inspectJSONSchema{}
	decodeStrict(t, "inspect of volumes", mustFerry(t, "inspect", split, "--json").Stdout, &insp, "format", "volumes")
	ver = verifyJSONSchema{}
	decodeStrict(t, "verify of volumes", mustFerry(t, "verify", split, "--json").Stdout, &ver, "format", "volumes", "checksumFile")
	if len(insp.Volumes) != len(exp.Volumes) || len(ver.Volumes) != len(exp.Volumes) || ver.Volumes[0].SHA256 != exp.Volumes[0].SHA256 {
		t.Errorf("inspect/verify of volumes --json: %+v, %+v", insp.Volumes, ver.Volumes)
	}

	dst := testregistry.NewDistribution(t)
	for _, cmd := range [][]string{
		{"import", "-f", archive, "--to-repo", dst.Repo("far/imported"), "--json"},
		{"copy", "-b", f.root, "--to-repo", dst.Repo("far/copied"), "--json"},
	} {
		var imp importJSONSchema
		r = mustFerry(t, cmd...)
		decodeStrict(t, cmd[0], r.Stdout, &imp, "repository", "root", "tag", "tags", "images", "blobsUploaded", "bytesUploaded",
			"blobsPresent", "bytesPresent", "manifestsPushed", "manifestsPresent", "dryRun")
		// The root, the 4 images it locks, the 1 its nested bundle locks.
		if imp.Repository != cmd[4] || imp.Root != cmd[4]+"@"+f.rootDigest || imp.Tag != "v1" || len(imp.Tags) != len(want) || imp.Images != 6 {
			t.Errorf("%s --json: %+v", cmd[0], imp)
		}
		for _, tag := range imp.Tags {
			if tag.Action != "create" || tag.Digest != want[tag.Tag] {
				t.Errorf("%s --json tag %+v, want create -> %s", cmd[0], tag, want[tag.Tag])
			}
		}
		if imp.Tags[len(imp.Tags)-1].Tag != "v1" {
			t.Errorf("%s --json: the original tag is not last: %+v", cmd[0], imp.Tags)
		}
	}

	var tags tagListJSONSchema
	r = mustFerry(t, "tag", "list", "-i", dst.Repo("far/imported"), "--digests", "--json")
	decodeStrict(t, "tag list", r.Stdout, &tags, "tag", "digest")
	if len(tags) != 1 || tags[0].Tag != "v1" || tags[0].Digest != f.rootDigest {
		t.Errorf("tag list --json: %+v", tags)
	}
}

func TestVersionSaysWhatWasBuilt(t *testing.T) {
	// The e2e binary is built with plain go build, without -X main.version:
	// --version must say what the Go toolchain recorded in that binary, as
	// `go version -m` reads it, not a word compiled in.
	out, err := exec.Command("go", "version", "-m", ferryBin).Output()
	if err != nil {
		t.Fatalf("go version -m %s: %v", ferryBin, err)
	}
	goVersion, modVersion, mainPath := "", "", ""
	settings := map[string]string{}
	for i, l := range strings.Split(string(out), "\n") {
		f := strings.Split(strings.TrimPrefix(l, "\t"), "\t")
		switch {
		case i == 0:
			goVersion = strings.TrimSpace(l[strings.LastIndex(l, " ")+1:])
		case len(f) >= 2 && f[0] == "path":
			mainPath = f[1]
		case len(f) >= 3 && f[0] == "mod":
			modVersion = f[2]
		case len(f) >= 2 && f[0] == "build":
			if k, v, ok := strings.Cut(f[1], "="); ok {
				settings[k] = v
			}
		}
	}
	if !strings.HasPrefix(goVersion, "go") || mainPath == "" || modVersion == "" || settings["GOOS"] == "" {
		t.Fatalf("go version -m gave no Go version, main package, main module or GOOS:\n%s", out)
	}
	r := mustFerry(t, "--version")
	platform := goVersion + " " + settings["GOOS"] + "/" + settings["GOARCH"] + ")\n"
	rev := settings["vcs.revision"]
	switch {
	case modVersion != "(devel)":
		if !strings.HasPrefix(r.Stdout, "ferry version "+modVersion+" (") || !strings.HasSuffix(r.Stdout, platform) {
			t.Errorf("--version says %q; want the module version %s and %s", r.Stdout, modVersion, platform)
		}
	case rev != "":
		short := rev[:min(12, len(rev))]
		if settings["vcs.modified"] == "true" {
			short += "-dirty"
		}
		if !strings.HasPrefix(r.Stdout, "ferry version "+short+" (commit "+rev) || !strings.HasSuffix(r.Stdout, platform) {
			t.Errorf("--version says %q; want revision %s (%s) and %s", r.Stdout, short, rev, platform)
		}
	default:
		// No module version, no VCS (GOFLAGS=-buildvcs=false, or no
		// checkout): the build information's own words for that, and
		// how to build a binary that knows its version (go install
		// ./cmd/ferry there would know no more).
		if want := "ferry version devel (no VCS information recorded; build with make build, or go install " + mainPath + "@VERSION, " + platform; r.Stdout != want {
			t.Errorf("--version says %q; want %q", r.Stdout, want)
		}
	}
}

func TestCompletionScripts(t *testing.T) {
	// The scripts ask ferry for candidates with --generate-bash-completion.
	if r := mustFerry(t, "--generate-bash-completion"); !strings.Contains(r.Stdout, "import\n") || !strings.Contains(r.Stdout, "completion\n") {
		t.Errorf("ferry completes no command:\n%s", r)
	}
	if r := mustFerry(t, "import", "--to", "--generate-bash-completion"); !strings.Contains(r.Stdout, "--to-repo") {
		t.Errorf("ferry import completes no flag:\n%s", r)
	}
	for _, sh := range []string{"bash", "zsh", "fish"} {
		if r := mustFerry(t, "completion", sh); !strings.Contains(r.Stdout, "ferry") {
			t.Errorf("completion %s printed no script:\n%s", sh, r)
		}
	}
	if r := ferry(t, nil, "completion", "tcsh"); r.Code != 2 {
		t.Errorf("completion tcsh: want a usage error: %s", r)
	}

	// The bash script, loaded in bash, completes "ferry imp" to import and
	// "--lev" to --level. Where a file name is wanted (an archive, the value
	// of -f or --since) it offers nothing, so that bash's own completion of
	// file names (complete -o default) takes over: help and h, or "--file"
	// after -f, once stood there and kept it from running.
	script := mustFerry(t, "completion", "bash").Stdout
	bash := exec.Command("bash", "-c", script+`
c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); COMPREPLY=(); _ferry_complete; echo "$* => ${COMPREPLY[*]}"; }
c ferry imp
c ferry export --lev
c ferry inspect ''
c ferry verify ''
c ferry serve ''
c ferry import -f ''
c ferry export --since ''
c ferry export --since v
c ferry tag ''
complete -p ferry`)
	bash.Env = []string{"PATH=" + filepath.Dir(ferryBin) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := bash.CombinedOutput()
	want := `ferry imp => import
ferry export --lev => --level
ferry inspect  => 
ferry verify  => 
ferry serve  => 
ferry import -f  => 
ferry export --since  => 
ferry export --since v => 
ferry tag  => list ls
complete -o default -F _ferry_complete ferry
`
	if err != nil || string(out) != want {
		t.Errorf("bash completion gave (%v)\n%s\nwant\n%s", err, out, want)
	}
}

// The fish script asks ferry as the bash one does, and falls back to file
// names: urfave/cli's static script offered "help h" where a command or a
// file was wanted, and listed --help twice.
func TestCompletionFish(t *testing.T) {
	if _, err := exec.LookPath("fish"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("fish is not installed; .ci/run installs it")
		}
		t.Skip("no fish on this machine")
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "release.tar.zst"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	script := mustFerry(t, "completion", "fish").Stdout
	fish := exec.Command("fish", "--no-config", "-c", script+`
for line in 'ferry imp' 'ferry export --lev' 'ferry import -f rel' 'ferry inspect ' 'ferry tag '
	echo "$line => "(string join -- ' ' (complete -C "$line"))
end
if complete -C 'ferry ' | string match -q -r '^(help|h)$'
	echo 'ferry offers help'
end`)
	fish.Dir = dir
	fish.Env = []string{"PATH=" + filepath.Dir(ferryBin) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	out, err := fish.CombinedOutput()
	want := `ferry imp => import
ferry export --lev => --level
ferry import -f rel => release.tar.zst
ferry inspect  => release.tar.zst
ferry tag  => list ls
`
	if err != nil || string(out) != want {
		t.Errorf("fish completion gave (%v)\n%s\nwant\n%s", err, out, want)
	}
}

func TestPullRewriteKeepsTheImagesLockMode(t *testing.T) {
	// imgpkg rewrites .imgpkg/images.yml over the extracted file, which
	// keeps its mode: that of config/app.yml, pushed with the same mode
	// (0644, so 0600 in the layer), whatever the umask.
	_, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	mustFerry(t, "import", "-f", archive, "--to-repo", repo)
	out := filepath.Join(t.TempDir(), "out")
	mustFerry(t, "pull", "-b", repo+":v1", "-o", out)
	fi, err := os.Stat(filepath.Join(out, ".imgpkg", "images.yml"))
	if err != nil {
		t.Fatal(err)
	}
	other, err := os.Stat(filepath.Join(out, "config", "app.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != other.Mode().Perm() {
		t.Errorf("rewritten images.yml has mode %o, want %o as config/app.yml", fi.Mode().Perm(), other.Mode().Perm())
	}
}

func TestArchiveStringsCannotDrawOnTheTerminal(t *testing.T) {
	// An untrusted archive whose original-ref of an image would, printed
	// raw, erase the line and draw a fake verdict in the very commands
	// used to vet it: once in an archive ferry reads (inspect lists it),
	// once in one it refuses (the entry listed twice: every command's
	// error names it).
	f, archive := exported(t)
	const hostile = "evil\x1b[2K\r\u202eOK: all good"
	const escaped = `evil\x1b[2K\r\u202eOK: all good`
	entries := readEntries(t, archive)
	ii := entryIndex(t, entries, "index.json")
	hostileArchive := func(twice bool) string {
		var index map[string]any
		if err := json.Unmarshal(entries[ii].Data, &index); err != nil {
			t.Fatal(err)
		}
		manifests := index["manifests"].([]any)
		changed := 0
		for _, m := range manifests {
			ann := m.(map[string]any)["annotations"].(map[string]any)
			if ann["dev.ferry.original-ref"] == f.app1.String() {
				ann["dev.ferry.original-ref"] = hostile
				if twice {
					index["manifests"] = append(manifests, m)
				}
				changed++
			}
		}
		if changed != 1 {
			t.Fatalf("index.json names %s %d times, want once", f.app1, changed)
		}
		data, err := json.Marshal(index)
		if err != nil {
			t.Fatal(err)
		}
		changedEntries := append([]tarEntry{}, entries...)
		changedEntries[ii] = tarEntry{Header: entries[ii].Header, Data: data}
		path := filepath.Join(t.TempDir(), "hostile.tar.zst")
		if err := os.WriteFile(path, zstdOf(t, writeTar(t, changedEntries)), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}

	dst := testregistry.NewDistribution(t)
	check := func(archive string, wantShown []string) {
		t.Helper()
		for _, args := range [][]string{
			{"inspect", archive},
			{"verify", archive},
			{"import", "-f", archive, "--to-repo", dst.Repo("far/release")},
		} {
			r := ferry(t, nil, args...)
			out := r.Stdout + r.Stderr
			if strings.ContainsAny(out, "\x1b\r\u202e") {
				t.Errorf("%s printed the archive's control characters raw:\n%q", args[0], out)
			}
			if slices.Contains(wantShown, args[0]) && !strings.Contains(out, escaped) {
				t.Errorf("%s does not show the hostile reference escaped:\n%s", args[0], out)
			}
		}
	}
	check(hostileArchive(false), []string{"inspect"})
	check(hostileArchive(true), []string{"inspect", "verify", "import"})
}

func TestDryRunSummarySaysNothingChanged(t *testing.T) {
	f, archive := exported(t)
	dst := testregistry.NewDistribution(t)
	repo := dst.Repo("far/release")
	r := mustFerry(t, "import", "--dry-run", "-f", archive, "--to-repo", repo)
	if !strings.HasPrefix(withoutHeartbeats(r.Stderr), "Dry run, nothing changed: what an import into "+repo+" would do\n") {
		t.Errorf("the dry run does not say so first:\n%s", r.Stderr)
	}
	if !strings.Contains(r.Stderr, fmt.Sprintf("  blobs      %d to upload", len(f.allBlobs))) {
		t.Errorf("the dry run does not count the blobs to upload:\n%s", r.Stderr)
	}
	for tag, d := range f.wantTags(t) {
		if !f.allManifests[d] && !strings.HasSuffix(tag, ".image-locations.imgpkg") {
			// The .imgpkg tag of an image-locations image, whose digest
			// a dry run does not compute.
			continue
		}
		n := 0
		for _, l := range strings.Split(r.Stderr, "\n") {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "create" && f[1] == tag {
				n++
			}
		}
		if n != 1 {
			t.Errorf("tag %s is listed %d times, want once as create", tag, n)
		}
	}
	if got := tagsOf(t, dst, repo); len(got) != 0 {
		t.Errorf("a dry run wrote tags %v", got)
	}
}
