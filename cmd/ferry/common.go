package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/archive"
	"github.com/ferry-dev/ferry/internal/atomicfile"
	"github.com/ferry-dev/ferry/internal/bundle"
	"github.com/ferry-dev/ferry/internal/ctxio"
	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/regopts"
	"github.com/ferry-dev/ferry/internal/volumes"
	"github.com/ferry-dev/ferry/serve"
)

// namedFile makes err, from opening a file named on the command line (an
// archive, its volumes), a usage error when no such file exists: like a
// mistyped flag, a matter of how ferry was called (exit 2). A volume
// missing from a set that does exist is not one: the archive is
// incomplete.
func namedFile(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return usageError{err}
	}
	return err
}

// archiveName matches the names export, imgpkg copy --to-tar and
// compressors give archives, volumes of a split export included.
var archiveName = regexp.MustCompile(`(?i)(\.tar(\.zst|\.gz)?|\.tgz|\.zst)(\.[0-9]{3})?$`)

// registryHost returns the registry a reference or repository names
// explicitly: its first component when that has a dot or a port, or is
// localhost, as go-containerregistry reads it. A path's "." and ".." (and
// the empty first component of an absolute path) are no registry.
func registryHost(s string) (string, bool) {
	host, _, ok := strings.Cut(s, "/")
	if !ok || host == "" || host[0] == '.' || strings.Trim(host, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-:[]") != "" {
		return "", false
	}
	return host, strings.ContainsAny(host, ".:") || host == "localhost"
}

// commandPath is c's command as typed after ferry: "export", "tag list".
func commandPath(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
}

// refuseArchiveAsReference refuses, before any registry is asked, a
// reference flag's value (flag is "-b", "-i" or "--lock") that names a
// file: one that exists, or one with no registry and an archive's name.
// Read as a reference, "rel.tar.zst" is Docker Hub's library/rel.tar.zst
// and "./rel.tar.zst" the registry ".", and the user was told that a host
// name does not resolve. --lock takes a file: only an archive's name is
// refused there. The message names the command that reads the file.
func refuseArchiveAsReference(c *cli.Context, flag, value string) error {
	if value == "" {
		return nil
	}
	isArchive := archiveName.MatchString(value)
	if flag == "--lock" {
		if !isArchive {
			return nil
		}
		return usagef("%s: --lock %s: --lock takes an ImagesLock or BundleLock YAML file, and %s is named as an archive: %s", commandPath(c), value, value, readArchiveHint(c, value))
	}
	// A file counts when it is named or begins as an archive, or is named
	// as a lock file: any other file (a binary named busybox beside the
	// user) says nothing against the reference of the same name.
	isLock := strings.HasSuffix(value, ".yml") || strings.HasSuffix(value, ".yaml")
	info, err := os.Stat(value)
	exists := err == nil && info.Mode().IsRegular() && (isArchive || isLock || volumes.StartsAnArchive(value))
	if _, explicit := registryHost(value); !exists && (explicit || !isArchive) {
		return nil
	}
	what := "is a file"
	if !exists {
		what = "names no registry and is named as an archive"
	}
	hint := readArchiveHint(c, value)
	if (c.Command.Name == "export" || c.Command.Name == "copy") && isLock {
		hint = fmt.Sprintf("an ImagesLock or BundleLock file goes with --lock %s", value)
	}
	form := "a registry reference (REGISTRY/PATH:TAG)"
	if c.Command.Name == "list" {
		form = "a repository (REGISTRY/PATH)"
	}
	return usagef("%s: %s %s %s, not %s: %s", commandPath(c), flag, value, what, form, hint)
}

// readArchiveHint says which command reads archive file instead of c.
func readArchiveHint(c *cli.Context, file string) string {
	to := c.String("to-repo")
	if to == "" {
		to = "REPO"
	}
	switch c.Command.Name {
	case "export":
		return fmt.Sprintf("to re-pack an archive, ferry export --from-tar %s -o %s; to upload it, ferry import -f %s --to-repo REPO", file, orDefault(c.String("output"), "FILE.tar.zst"), file)
	case "copy":
		if out := c.String("to-tar"); out != "" {
			return fmt.Sprintf("to re-pack an archive, ferry export --from-tar %s -o %s", file, out)
		}
		return fmt.Sprintf("to upload an archive, ferry copy --tar %s --to-repo %s (or ferry import -f %s --to-repo %s)", file, to, file, to)
	case "pull":
		return fmt.Sprintf("pull reads a registry: upload the archive with ferry import -f %s --to-repo REPO and pull from REPO, or serve it with ferry serve %s and pull from there", file, file)
	case "list":
		return fmt.Sprintf("ferry inspect %s lists what an archive holds and the tags an import writes", file)
	}
	return fmt.Sprintf("to upload an archive, ferry import -f %s --to-repo REPO", file)
}

// orDefault is s, or def when s is empty.
func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// stdinArchive is standard input, for a command that reads an archive from
// it (-f -, --from-tar -), and what to call when the command is done. A
// file redirected to it is read as it is, at random (its reads do not
// stall). Anything else (a pipe, a socket, a terminal) is read on a
// goroutine of its own (ctxio.Detached), so that a signal ends the command
// and its cleanup runs even while the sender has stopped without closing
// the pipe: the read in progress cannot be interrupted. That goroutine may
// stay blocked in it, which is harmless: the process exits as soon as the
// command returns.
func stdinArchive(c *cli.Context) (io.Reader, func()) {
	if _, _, ok := archive.RandomAccess(c.App.Reader); ok {
		return c.App.Reader, func() {}
	}
	d := ctxio.NewDetached(c.Context, c.App.Reader)
	return d, func() { d.Close() }
}

// archiveInput opens the archive a command reads: path, its volumes, or for
// "-" standard input (stdinArchive). what prefixes the error of opening a
// file ("import", "export --from-tar"). The returned function releases it.
func archiveInput(c *cli.Context, path, what string) (io.Reader, func(), error) {
	if path == "-" {
		in, done := stdinArchive(c)
		return in, done, nil
	}
	f, err := volumes.OpenArchive(c.Context, path)
	if err != nil {
		return nil, nil, namedArchive(c, path, fmt.Errorf("%s: %w", what, err))
	}
	return f, func() { f.Close() }, nil
}

// lockOutputNotInput refuses, as a usage error, a --lock-output (lo) that
// would replace the archive an import reads from path (in, as
// archiveInput opened it): the file, one of its volumes, or the checksum
// file beside them. Written once the import succeeded, the lock would
// otherwise take the place of the one copy of the release that crossed
// the gap, silently.
func lockOutputNotInput(lo, path string, in io.Reader) error {
	if lo == "" || path == "-" {
		return nil
	}
	target, err := atomicfile.Target(lo)
	if err != nil {
		return nil // checkLockOutput said why already
	}
	fi, err := os.Stat(target)
	if err != nil {
		return nil // a new file replaces nothing
	}
	inputs := []string{path, path + ".sha256"}
	if vs, ok := in.(*volumes.Set); ok {
		inputs = []string{vs.Base() + ".sha256"}
		if s := vs.Sidecar(); s != "" {
			inputs = append(inputs, s)
		}
		for _, v := range vs.Volumes() {
			inputs = append(inputs, v.Path)
		}
	}
	for _, p := range inputs {
		if pi, err := os.Stat(p); err == nil && os.SameFile(fi, pi) {
			return usagef("--lock-output %s is %s, which this import reads: the lock would replace it; write the lock under another name", lo, p)
		}
	}
	return nil
}

// namedArchive is namedFile for the archive path a command reads (-f, --tar,
// --from-tar, an argument): when no such file exists and path reads as a
// registry reference (REGISTRY/PATH:TAG, its registry named), it says which
// command reads a registry instead.
func namedArchive(c *cli.Context, path string, err error) error {
	err = namedFile(err)
	if !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if _, explicit := registryHost(path); !explicit {
		return err
	}
	if _, perr := name.ParseReference(path, name.StrictValidation); perr != nil {
		return err
	}
	var hint string
	switch c.Command.Name {
	case "import", "copy":
		hint = fmt.Sprintf("to copy from a registry, ferry copy -b %s --to-repo %s (-i for an image)", path, orDefault(c.String("to-repo"), "REPO"))
	case "export":
		hint = fmt.Sprintf("to export from a registry, ferry export -b %s -o %s (-i for an image)", path, orDefault(c.String("output"), "FILE.tar.zst"))
	default:
		hint = fmt.Sprintf("%s reads an archive, not a registry; ferry export -b %s -o FILE.tar.zst writes one (-i for an image)", c.Command.Name, path)
	}
	return usageError{fmt.Errorf("%w; %s reads as a registry reference: %s", err, path, hint)}
}

// parseLabels turns KEY=VALUE strings into a map, refusing the label that
// makes an image a bundle.
func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("push: -l %q is not KEY=VALUE", kv)
		}
		if k == bundle.LabelKey {
			// Build refuses it too, but only once the files are read,
			// and as a failure (exit 1).
			return nil, usagef("push: -l %q: %s is reserved: push -b sets it on bundles, and only there", kv, k)
		}
		labels[k] = v
	}
	return labels, nil
}

// explain turns registry errors into ones that tell the user what to do,
// knowing the registry options the command used (see regopts.Options.Explain).
func explain(reg regopts.Options, err error, ref string) error {
	if err == nil {
		return nil
	}
	return reg.Explain(err, ref)
}

// explainFor is explain where the options are not at hand: they are read
// again from c's flags (which registryOptions checked before any work).
func explainFor(c *cli.Context, err error, ref string) error {
	reg, _ := registryOptions(c)
	return explain(reg, err, ref)
}

// plural returns "1 image" or "2 images".
func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}

// registryClient returns the client of ferry's moves, reaching registries
// as reg says.
func registryClient(reg regopts.Options) (*registry.Client, error) {
	opts, err := reg.ClientOptions()
	if err != nil {
		return nil, err
	}
	return registry.New(opts), nil
}

// repoFlag reads the repository given to flag of c (--to-repo,
// inventory's --repo, tag list's -i) as parseRepository does. A value it
// refuses is a usage error that names the command and the flag, as every
// other: "import: --to-repo "mirror/app" names no registry, …".
func repoFlag(c *cli.Context, flag, s string, reg regopts.Options, registryRequired bool) (name.Repository, error) {
	repo, err := parseRepository(s, reg, registryRequired)
	if err != nil {
		return repo, usagef("%s: %s %w", commandPath(c), flag, err)
	}
	return repo, nil
}

// referenceFlag reads the reference given to flag of c (-b, -i): a tag or
// a digest. A value that is not one is a usage error that names the
// command and the flag.
func referenceFlag(c *cli.Context, flag, s string, reg regopts.Options) (name.Reference, error) {
	ref, err := name.ParseReference(s, reg.NameOptions()...)
	if err != nil {
		return nil, usagef("%s: %s %q is not a reference (REGISTRY/PATH:TAG or REGISTRY/PATH@DIGEST): %v", commandPath(c), flag, s, err)
	}
	return ref, nil
}

// tagFlag is referenceFlag for a reference that must be a tag (push's -b
// and -i: what it pushes gets that tag).
func tagFlag(c *cli.Context, flag, s string, reg regopts.Options) (name.Tag, error) {
	tag, err := name.NewTag(s, reg.NameOptions()...)
	if err != nil {
		return tag, usagef("%s: %s %q is not a tag reference (REGISTRY/PATH:TAG): %v", commandPath(c), flag, s, err)
	}
	return tag, nil
}

// parseRepository reads a repository: a --to-repo value, inventory's
// --repo, tag list's -i (see repoFlag, which names the flag in its
// errors). go-containerregistry checks only the characters of the path; a
// component the distribution grammar forbids ("-a", "a.-b", "r.", an
// empty one) would pass, a dry run would say all is well, and the registry
// would refuse the first upload with a bare 404.
//
// With registryRequired, the registry must be named: go-containerregistry
// reads "mirror/app" as Docker Hub's, so a release meant for a private
// mirror would be pushed to a public registry with whatever Docker login
// the machine has. Without it a repository without its registry is read
// as Docker Hub's, which a command that only reads from it (tag list) may
// do.
func parseRepository(s string, reg regopts.Options, registryRequired bool) (name.Repository, error) {
	// What follows the host: a tag or digest there is the likeliest
	// mistake, and its own message says so.
	path := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		path = s[i+1:]
	} else if host, port, ok := strings.Cut(s, ":"); ok && host != "" && port != "" && strings.Trim(port, "0123456789") == "" {
		// "localhost:5000": a registry whose repository path was forgotten,
		// not a tag.
		return name.Repository{}, fmt.Errorf("%q names a registry but no repository: give REGISTRY/PATH (%s/my/repo)", s, s)
	}
	switch {
	case strings.Contains(path, "@"):
		return name.Repository{}, fmt.Errorf("%q names a digest: give a repository (REGISTRY/PATH), not a digest", s)
	case strings.Contains(path, ":"):
		return name.Repository{}, fmt.Errorf("%q names a tag: give a repository (REGISTRY/PATH), not a tag", s)
	}
	if host, _, _ := strings.Cut(s, "/"); registryRequired && (host == s || !strings.ContainsAny(host, ".:") && host != "localhost") {
		return name.Repository{}, fmt.Errorf("%q names no registry, and would mean Docker Hub: give REGISTRY/PATH (registry.example.com/%s), or docker.io/%s for Docker Hub", s, s, s)
	}
	repo, err := name.NewRepository(s, reg.NameOptions()...)
	if err != nil {
		return repo, fmt.Errorf("%q is not a repository (REGISTRY/PATH): %v", s, err)
	}
	if err := serve.CheckRepository(repo.RepositoryStr()); err != nil {
		// Name the component at fault: one component is a valid name
		// exactly when it is a valid component.
		for _, c := range strings.Split(repo.RepositoryStr(), "/") {
			if serve.CheckRepository(c) != nil {
				return repo, fmt.Errorf("%q is not a repository (REGISTRY/PATH): path component %q is not lowercase letters and digits separated by '.', '_', '__' or dashes", s, c)
			}
		}
		return repo, fmt.Errorf("%q is not a repository (REGISTRY/PATH): %v", s, err)
	}
	return repo, nil
}
