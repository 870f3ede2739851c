package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/urfave/cli/v2"

	"github.com/ferry-dev/ferry/internal/regopts"
)

// registryFlags are the registry access flags every command takes; their
// names follow imgpkg's so that scripts move over unchanged. named lists
// the command's flags whose registries get the explicit credentials ("-b
// and -i"), for --registry-credential-host's default. What the timeout
// also bounds is said in the app's description, not here: a flag's help
// is what it does and its default.
func registryFlags(named string) []cli.Flag {
	const cat = "Registry"
	const docker = "the Docker config and its credential helpers"
	return []cli.Flag{
		&cli.StringFlag{Name: "registry-username", EnvVars: []string{"FERRY_USERNAME"}, Category: cat,
			Usage: "username `USER` for the registries, with --registry-password (default: " + docker + ")"},
		&cli.StringFlag{Name: "registry-password", EnvVars: []string{"FERRY_PASSWORD"}, Category: cat,
			Usage: "password `PASSWORD` of --registry-username (default: " + docker + ")"},
		&cli.StringFlag{Name: "registry-token", EnvVars: []string{"FERRY_TOKEN"}, Category: cat,
			Usage: "bearer token `TOKEN` for the registries, instead of a username and password (default: " + docker + ")"},
		&cli.StringSliceFlag{Name: "registry-credential-host", Category: cat,
			Usage: "another registry `HOST` (or HOST:PORT) that gets the explicit credentials, * for every one; repeatable " +
				"(default: only the registries of " + named + ", and the token services they name)"},
		&cli.BoolFlag{Name: "registry-anon", Category: cat,
			Usage: "send no credentials at all"},
		&cli.BoolFlag{Name: "registry-insecure", Category: cat,
			Usage: "allow plain HTTP beyond loopback and unverified TLS (plain HTTP to 127.0.0.1, ::1 or localhost needs no flag)"},
		&cli.StringSliceFlag{Name: "registry-ca-cert-path", Category: cat, Action: existingFiles("registry-ca-cert-path"),
			Usage: "PEM `FILE` of CA certificates to trust besides the system's; repeatable (default: the system's only)"},
		&cli.IntFlag{Name: "registry-retry-count", Value: regopts.DefaultRetryCount, Category: cat, Action: atLeastOne("registry-retry-count"),
			Usage: "`N` attempts per request on 408, 429, 5xx (but 501, 505), dropped connections and timeouts, with exponential backoff; 1 makes no retries"},
		&cli.DurationFlag{Name: "registry-response-header-timeout", Value: regopts.DefaultResponseHeaderTimeout, DefaultText: durationText(regopts.DefaultResponseHeaderTimeout), Category: cat, Action: positiveDuration("registry-response-header-timeout"),
			Usage: "how long to wait for a registry's response headers, and the longest a download or upload may make no progress: a positive `DURATION` with its unit (30s, 2m)"},
	}
}

// durationText is d as the README and the help write durations: "2m",
// not time.Duration's "2m0s".
func durationText(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// toRepoFlag is --to-repo, the repository import and copy write into. Its
// registry must be named (parseRepository): a name without one would go to
// Docker Hub, a public registry, as docker push's would.
func toRepoFlag() cli.Flag {
	return &cli.StringFlag{Name: "to-repo", Usage: "destination repository, `REGISTRY/PATH` with the registry named: docker.io/PATH for Docker Hub (a PATH alone is refused)"}
}

// concurrencyFlag is --concurrency, value by default; usage says what runs
// at once.
func concurrencyFlag(value int, usage string) cli.Flag {
	return &cli.IntFlag{Name: "concurrency", Value: value, Usage: usage, Action: atLeastOne("concurrency")}
}

// atLeastOne is the Action of an int flag that counts what must be one or
// more: 0 and negatives are refused, never read as the default or as no
// limit.
func atLeastOne(name string) func(*cli.Context, int) error {
	return func(c *cli.Context, n int) error {
		if n < 1 {
			return usagef("%s: --%s %d: give 1 or more", commandPath(c), name, n)
		}
		return nil
	}
}

// positiveDuration is the Action of a duration flag that bounds a wait: 0
// and negatives are refused, never read as the default or as no limit.
func positiveDuration(name string) func(*cli.Context, time.Duration) error {
	return func(c *cli.Context, d time.Duration) error {
		if d <= 0 {
			return usagef("%s: --%s %s: give a positive duration with its unit (30s, 2m)", commandPath(c), name, d)
		}
		return nil
	}
}

// existingFiles is the Action of a repeatable flag naming files to read:
// one that does not exist is a usage error, as is every file named on the
// command line (namedFile), found before any work. Other failures to read
// it are left to the work that reads it.
func existingFiles(name string) func(*cli.Context, []string) error {
	return func(c *cli.Context, paths []string) error {
		for _, p := range paths {
			if _, err := os.Stat(p); errors.Is(err, fs.ErrNotExist) {
				return usagef("%s: --%s %s: no such file or directory", commandPath(c), name, p)
			}
		}
		return nil
	}
}

// existingFile is existingFiles for a flag naming one file.
func existingFile(name string) func(*cli.Context, string) error {
	return func(c *cli.Context, path string) error {
		return existingFiles(name)(c, []string{path})
	}
}

// withRegistryFlags appends the output flags (--json, -v, -q, verbose
// saying what -v adds) and the registry flags to a command's own.
// --registry-credential-host's default names those of flags that name
// registries (credentialHosts).
func withRegistryFlags(verbose string, flags ...cli.Flag) []cli.Flag {
	var named []string
	for _, f := range flags {
		switch f.Names()[0] {
		case "bundle":
			named = append(named, "-b")
		case "image":
			named = append(named, "-i")
		case "to-repo":
			named = append(named, "--to-repo")
		case "repo":
			named = append(named, "--repo")
		}
	}
	list := strings.Join(named, ", ")
	if n := len(named); n > 1 {
		list = strings.Join(named[:n-1], ", ") + " and " + named[n-1]
	}
	return append(append(flags, outputFlags(verbose)...), registryFlags(list)...)
}

// registryOptions reads the registry flags of c. Flags that contradict each
// other or name a CA file with no certificate in it are a usage error, said
// before any registry is asked (regopts.Options.Check).
func registryOptions(c *cli.Context) (regopts.Options, error) {
	o := regopts.Options{
		Username:              c.String("registry-username"),
		CredentialHosts:       credentialHosts(c),
		Password:              c.String("registry-password"),
		Token:                 c.String("registry-token"),
		Anon:                  c.Bool("registry-anon"),
		Insecure:              c.Bool("registry-insecure"),
		CACertPaths:           c.StringSlice("registry-ca-cert-path"),
		RetryCount:            c.Int("registry-retry-count"),
		ResponseHeaderTimeout: c.Duration("registry-response-header-timeout"),
		UserAgent:             "ferry/" + readVersion().short,
	}
	o.CredentialsFrom = credentialsFrom(c, o)
	if err := o.Check(); err != nil {
		return o, usageError{fmt.Errorf("%s: %w", strings.TrimPrefix(c.Command.HelpName, c.App.Name+" "), err)}
	}
	return o, nil
}

// credentialsFrom names where the explicit credentials came from, for
// messages: the variable (FERRY_USERNAME, FERRY_TOKEN) when they came
// from one rather than from the command line, else the flag.
func credentialsFrom(c *cli.Context, o regopts.Options) string {
	flag, env, value := "registry-username", "FERRY_USERNAME", o.Username
	if o.Token != "" {
		flag, env, value = "registry-token", "FERRY_TOKEN", o.Token
	}
	if value == "" {
		return ""
	}
	args, _ := c.App.Metadata["args"].([]string)
	for _, a := range args {
		if a == "--" {
			break
		}
		if n := strings.TrimLeft(a, "-"); n != a && (n == flag || strings.HasPrefix(n, flag+"=")) {
			return "--" + flag
		}
	}
	if os.Getenv(env) == value {
		return env
	}
	return "--" + flag
}

// credentialHosts lists the registries that get explicit credentials: those
// named on the command line, plus --registry-credential-host; nil (every
// registry) when that flag says "*".
func credentialHosts(c *cli.Context) []string {
	hosts := []string{}
	for _, h := range c.StringSlice("registry-credential-host") {
		if h == "*" {
			return nil
		}
		hosts = append(hosts, h)
	}
	// inventory's --repo (a slice; serve's --repo, a plain path, reads as
	// none) names registries the way --to-repo does. A copy: the flag's own
	// slice must not grow under its other readers.
	named := slices.Clone(c.StringSlice("repo"))
	for _, flag := range []string{"bundle", "image", "to-repo"} {
		if v := c.String(flag); v != "" {
			named = append(named, v)
		}
	}
	for _, v := range named {
		opts := []name.Option{name.WeakValidation}
		if c.Bool("registry-insecure") {
			opts = append(opts, name.Insecure)
		}
		if ref, err := name.ParseReference(v, opts...); err == nil {
			hosts = append(hosts, ref.Context().RegistryStr())
		} else if repo, err := name.NewRepository(v, opts...); err == nil {
			hosts = append(hosts, repo.RegistryStr())
		}
	}
	return hosts
}

// defaultOnce keeps urfave/cli from adding "(default: false)" to the help
// of a bool flag of c (or of its subcommands) whose usage already says
// what happens without it: the help would state two defaults.
func defaultOnce(c *cli.Command) {
	for _, f := range c.Flags {
		if b, ok := f.(*cli.BoolFlag); ok && strings.Contains(b.Usage, "(default:") {
			b.DisableDefaultText = true
		}
	}
	for _, sub := range c.Subcommands {
		defaultOnce(sub)
	}
}
