package regopts

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
)

// dockerConfig is what ferry reads of the Docker config file that
// go-containerregistry's DefaultKeychain uses, to say in messages where a
// registry's credentials come from. It never holds a credential: only
// whether a registry has one, and the names of the credential helpers.
type dockerConfig struct {
	// path is the file read.
	path string
	// auths are the registries (host[:port]) the file holds credentials for.
	auths map[string]bool
	// helpers maps a registry to its credential helper's suffix
	// (credHelpers).
	helpers map[string]string
	// store is the suffix of the helper for every other registry
	// (credsStore).
	store string
}

// loadDockerConfig reads the file authn.DefaultKeychain reads, found as it
// finds it: $DOCKER_CONFIG/config.json or ~/.docker/config.json (the former
// when DOCKER_CONFIG is set and either exists), else $REGISTRY_AUTH_FILE,
// else Podman's containers/auth.json. nil when there is none or it cannot
// be read.
func loadDockerConfig() *dockerConfig {
	var candidates []string
	home, _ := os.UserHomeDir()
	homeConfig := ""
	if home != "" {
		homeConfig = filepath.Join(home, ".docker", "config.json")
	}
	dockerDir := os.Getenv("DOCKER_CONFIG")
	switch {
	case (homeConfig != "" && fileExists(homeConfig)) || (dockerDir != "" && fileExists(filepath.Join(dockerDir, "config.json"))):
		if dockerDir != "" {
			candidates = append(candidates, filepath.Join(dockerDir, "config.json"))
		} else {
			candidates = append(candidates, homeConfig)
		}
	default:
		if f := os.Getenv("REGISTRY_AUTH_FILE"); f != "" {
			candidates = append(candidates, filepath.Clean(f))
		}
		if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" {
			candidates = append(candidates, filepath.Join(d, "containers", "auth.json"))
		}
		configDir := os.Getenv("XDG_CONFIG_HOME")
		if configDir == "" && home != "" {
			configDir = filepath.Join(home, ".config")
		}
		if configDir != "" {
			candidates = append(candidates, filepath.Join(configDir, "containers", "auth.json"))
		}
	}
	for _, p := range candidates {
		if !fileExists(p) {
			continue
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return nil
		}
		var raw struct {
			Auths       map[string]json.RawMessage `json:"auths"`
			CredHelpers map[string]string          `json:"credHelpers"`
			CredsStore  string                     `json:"credsStore"`
		}
		if json.Unmarshal(data, &raw) != nil {
			return nil
		}
		c := &dockerConfig{path: p, auths: map[string]bool{}, helpers: map[string]string{}, store: raw.CredsStore}
		for k := range raw.Auths {
			c.auths[configHost(k)] = true
		}
		for k, v := range raw.CredHelpers {
			c.helpers[configHost(k)] = v
		}
		return c
	}
	return nil
}

func fileExists(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir()
}

// configHost is the registry a key of auths or credHelpers names: keys may
// be URLs ("https://index.docker.io/v1/").
func configHost(key string) string {
	h := key
	if i := strings.Index(h, "://"); i >= 0 {
		h = h[i+3:]
	}
	if i := strings.IndexByte(h, '/'); i >= 0 {
		h = h[:i]
	}
	return dockerHub(h)
}

// dockerHub maps Docker Hub's other names to the one requests go to.
func dockerHub(host string) string {
	switch host {
	case "docker.io", "registry-1.docker.io", name.DefaultRegistry:
		return name.DefaultRegistry
	}
	return host
}

// helper returns the credential helper host's credentials come from
// ("docker-credential-NAME"), "" when none.
func (c *dockerConfig) helper(host string) string {
	if c == nil {
		return ""
	}
	if h := c.helpers[dockerHub(host)]; h != "" {
		return "docker-credential-" + h
	}
	if c.store != "" {
		return "docker-credential-" + c.store
	}
	return ""
}

// has reports whether the file itself holds credentials for host.
func (c *dockerConfig) has(host string) bool { return c != nil && c.auths[dockerHub(host)] }

// helperKeychain is a keychain whose failures, a credential helper
// missing or failing, name the helper, the registry and the config file
// instead of the helper library's raw "error getting credentials - err:
// exit status 3, out: “".
type helperKeychain struct{ inner authn.Keychain }

// Resolve implements authn.Keychain.
func (k helperKeychain) Resolve(r authn.Resource) (authn.Authenticator, error) {
	auth, err := k.inner.Resolve(r)
	if err != nil {
		return nil, helperError(r.RegistryStr(), err)
	}
	return auth, nil
}

var exitStatus = regexp.MustCompile(`exit status (\d+)`)

// helperError explains err, a failure of the Docker keychain for host.
func helperError(host string, err error) error {
	cfg := loadDockerConfig()
	helper := cfg.helper(host)
	if helper == "" {
		where := "the Docker config"
		if cfg != nil {
			where = cfg.path
		}
		return &explainedError{hint: fmt.Sprintf("cannot read the credentials for registry %s from %s: "+
			"fix it, or pass --registry-username/--registry-password", host, where), err: err}
	}
	msg := err.Error()
	what := "failed"
	switch {
	case errors.Is(err, exec.ErrNotFound) || strings.Contains(msg, "executable file not found"):
		what = "is not on PATH"
	case exitStatus.MatchString(msg):
		what = "failed (exit " + exitStatus.FindStringSubmatch(msg)[1] + ")"
	}
	return &explainedError{hint: fmt.Sprintf("credential helper %s (for %s in %s) %s: "+
		"install it, fix credHelpers/credsStore, or pass --registry-username/--registry-password",
		helper, host, cfg.path, what), err: err}
}
