package main

import (
	"slices"
	"testing"

	"github.com/urfave/cli/v2"
)

// TestCredentialHostsNameEachRepositoryGiven: the explicit credentials go
// to the registry of every repository a command names, inventory's --repo
// values included (each may be on its own registry); serve's --repo is a
// path on no registry.
func TestCredentialHostsNameEachRepositoryGiven(t *testing.T) {
	for _, tc := range []struct {
		cmd  *cli.Command
		args []string
		want []string
	}{
		{inventoryCommand(), []string{"--repo", "a.example:5000/x/y", "--repo", "b.example/z", "-o", "have.json"}, []string{"a.example:5000", "b.example"}},
		{inventoryCommand(), []string{"--repo", "a.example/x", "--registry-credential-host", "c.example"}, []string{"c.example", "a.example"}},
		{importCommand(), []string{"--to-repo", "d.example/far"}, []string{"d.example"}},
		{serveCommand(), []string{"--repo", "team/app"}, []string{}},
	} {
		var got []string
		cmd := tc.cmd
		cmd.Action = func(c *cli.Context) error { got = credentialHosts(c); return nil }
		app := &cli.App{Name: "ferry", Commands: []*cli.Command{cmd}}
		if err := app.Run(append([]string{"ferry", cmd.Name}, tc.args...)); err != nil {
			t.Fatalf("%s %v: %v", cmd.Name, tc.args, err)
		}
		if got == nil || !slices.Equal(got, tc.want) {
			t.Errorf("%s %v: credential hosts %q, want %q", cmd.Name, tc.args, got, tc.want)
		}
	}
}
