package main

import (
	"errors"
	"fmt"
	"io/fs"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"

	"github.com/ferry-dev/ferry/internal/registry"
	"github.com/ferry-dev/ferry/internal/regopts"
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

// parseLabels turns KEY=VALUE strings into a map.
func parseLabels(kvs []string) (map[string]string, error) {
	if len(kvs) == 0 {
		return nil, nil
	}
	labels := make(map[string]string, len(kvs))
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, usagef("label %q is not KEY=VALUE", kv)
		}
		labels[k] = v
	}
	return labels, nil
}

// explain turns registry errors into ones that tell the user what to do.
func explain(err error, ref string) error {
	if err == nil {
		return nil
	}
	return regopts.Explain(err, ref)
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

// parseRepo reads a --to-repo value (or inventory's --repo).
// go-containerregistry checks only the characters of the path; a component
// the distribution grammar forbids ("-a", "a.-b", "r.", an empty one) would
// pass, a dry run would say all is well, and the registry would refuse the
// first upload with a bare 404.
//
// The registry must be named: go-containerregistry reads "mirror/app" as
// Docker Hub's, so a release meant for a private mirror would be pushed to
// a public registry with whatever Docker login the machine has.
func parseRepo(s string, reg regopts.Options) (name.Repository, error) {
	// What follows the host: a tag or digest there is the likeliest
	// mistake, and its own message says so.
	path := s
	if i := strings.IndexByte(s, '/'); i >= 0 {
		path = s[i+1:]
	} else if host, port, ok := strings.Cut(s, ":"); ok && host != "" && port != "" && strings.Trim(port, "0123456789") == "" {
		// "localhost:5000": a registry whose repository path was forgotten,
		// not a tag.
		return name.Repository{}, usagef("%q names a registry but no repository: give REGISTRY/PATH (%s/my/repo)", s, s)
	}
	switch {
	case strings.Contains(path, "@"):
		return name.Repository{}, usagef("%q names a digest: give a repository (REGISTRY/PATH), not a digest", s)
	case strings.Contains(path, ":"):
		return name.Repository{}, usagef("%q names a tag: give a repository (REGISTRY/PATH), not a tag", s)
	}
	if host, _, _ := strings.Cut(s, "/"); host == s || !strings.ContainsAny(host, ".:") && host != "localhost" {
		return name.Repository{}, usagef("%q names no registry, and would mean Docker Hub: give REGISTRY/PATH (registry.example.com/%s), or docker.io/%s for Docker Hub", s, s, s)
	}
	repo, err := name.NewRepository(s, reg.NameOptions()...)
	if err != nil {
		return repo, usagef("%q is not a repository (REGISTRY/PATH): %v", s, err)
	}
	if err := serve.CheckRepository(repo.RepositoryStr()); err != nil {
		// Name the component at fault: one component is a valid name
		// exactly when it is a valid component.
		for _, c := range strings.Split(repo.RepositoryStr(), "/") {
			if serve.CheckRepository(c) != nil {
				return repo, usagef("%q is not a repository (REGISTRY/PATH): path component %q is not lowercase letters and digits separated by '.', '_', '__' or dashes", s, c)
			}
		}
		return repo, usagef("%q is not a repository (REGISTRY/PATH): %v", s, err)
	}
	return repo, nil
}
