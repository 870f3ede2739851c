package main

import (
	"runtime"
	"runtime/debug"
	"strings"
)

// version is set by `make build` with -ldflags "-X main.version=…" (git
// describe). Left empty (go install, plain go build), the version comes
// from the build information Go records in every binary.
var version string

// installPath is ferry's main package, as go install names it.
const installPath = "github.com/ferry-dev/ferry/cmd/ferry"

// buildVersion is what ferry says it is: short names it in the User-Agent
// and in the archives it writes; long is what --version prints.
type buildVersion struct {
	short, long string
}

// readVersion describes this binary.
func readVersion() buildVersion {
	info, _ := debug.ReadBuildInfo()
	return describeVersion(version, info)
}

// describeVersion builds the version from the stamped one (may be empty)
// and the build information (may be nil): the module version that go
// install records (v1.2.3, or a pseudo-version), else the VCS revision that
// go build records in a checkout, else "devel" (the long form then says
// why, and how to build a binary that knows); the long form adds the
// revision, whether the tree was modified, its time and the Go toolchain.
func describeVersion(stamped string, info *debug.BuildInfo) buildVersion {
	var rev, when string
	modified := false
	goVersion := runtime.Version()
	mod := ""
	if info != nil {
		if info.GoVersion != "" {
			goVersion = info.GoVersion
		}
		if v := info.Main.Version; v != "" && v != "(devel)" {
			mod = v
		}
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
	}
	short := stamped
	switch {
	case short != "":
	case mod != "":
		short = mod
	case rev != "":
		short = rev[:min(12, len(rev))]
		if modified {
			short += "-dirty"
		}
	default:
		short = "devel"
	}
	var details []string
	if short == "devel" {
		// go build records no revision in a git worktree (whose .git is a
		// file, golang/go#58218) or with -buildvcs=false, and go install
		// ./cmd/ferry there records none either: make build stamps one,
		// and go install of a version records the module's.
		details = append(details, "no VCS information recorded; build with make build, or go install "+installPath+"@VERSION")
	}
	if rev != "" {
		c := "commit " + rev
		if modified {
			c += " (modified)"
		}
		details = append(details, c)
	}
	if when != "" {
		details = append(details, when)
	}
	details = append(details, goVersion+" "+runtime.GOOS+"/"+runtime.GOARCH)
	return buildVersion{short: short, long: short + " (" + strings.Join(details, ", ") + ")"}
}
