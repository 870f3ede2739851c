package inventory_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ferry-dev/ferry/internal/inventory"
)

// TestParseChecksNames: every repository is named as an image reference
// names one. A bad name is refused naming the file and the entry, and a
// long one is not copied into the error.
func TestParseChecksNames(t *testing.T) {
	doc := func(registry, repository string) []byte {
		return fmt.Appendf(nil, `{"mediaType":%q,"formatVersion":1,"repositories":[{"registry":"reg.example","repository":"ok"},{"registry":%q,"repository":%q}]}`,
			inventory.MediaType, registry, repository)
	}
	for _, ok := range [][2]string{
		{"reg.example:5000", "mirror/app"},
		{"127.0.0.1:5000", "mirror/app"},
		{"[::1]:5000", "a/b/c"},
		{"localhost", "app"},
		{"Reg-1.Example.COM", "team_x/app.v2"},
	} {
		if _, err := inventory.Parse(doc(ok[0], ok[1]), "have.json"); err != nil {
			t.Errorf("%s/%s: %v", ok[0], ok[1], err)
		}
	}
	for _, bad := range [][2]string{
		{strings.Repeat("<", 6<<20), "mirror/app"},
		{"<<<", "mirror/app"},
		{"reg.example:99999", "mirror/app"},
		{"reg example", "mirror/app"},
		{"reg.example/path", "mirror/app"},
		{"reg.example", "Mirror/App"},
		{"reg.example", "mirror/<app>"},
		{"reg.example", strings.Repeat("a", 2000)},
		{"", "mirror/app"},
		{"reg.example", ""},
	} {
		_, err := inventory.Parse(doc(bad[0], bad[1]), "have.json")
		if err == nil || !strings.Contains(err.Error(), "have.json") || !strings.Contains(err.Error(), "repository 1") || len(err.Error()) > 600 {
			t.Errorf("%.40s/%.40s: %.1000v; want a short error naming have.json, repository 1", bad[0], bad[1], err)
		}
	}
}

// TestSniffAndNotAnInventory: any JSON object may be an inventory, its
// media type anywhere; Parse says whether it is, and JSON of another kind
// matches ErrNotInventory.
func TestSniffAndNotAnInventory(t *testing.T) {
	for _, b := range []string{"{", "  \n{\"repositories\": []", `{"mediaType":"` + inventory.MediaType + `"}`} {
		if !inventory.Sniff([]byte(b)) {
			t.Errorf("Sniff(%q) = false", b)
		}
	}
	for _, b := range []string{"", "[]", "\x28\xb5\x2f\xfd", "\x1f\x8b", "release notes"} {
		if inventory.Sniff([]byte(b)) {
			t.Errorf("Sniff(%q) = true", b)
		}
	}
	_, err := inventory.Parse([]byte(`{"name":"left-pad"}`), "package.json")
	if !errors.Is(err, inventory.ErrNotInventory) || !strings.Contains(err.Error(), "package.json") {
		t.Errorf("Parse of other JSON: %v; want ErrNotInventory naming the file", err)
	}
	// Other JSON whose fields clash with an inventory's types is no
	// inventory either; an inventory with such a field is a damaged one.
	_, err = inventory.Parse([]byte(`{"mediaType":"x","repositories":"nope"}`), "other.json")
	if !errors.Is(err, inventory.ErrNotInventory) {
		t.Errorf("Parse of other JSON with a clashing field: %v; want ErrNotInventory", err)
	}
	_, err = inventory.Parse([]byte(`{"mediaType":"`+inventory.MediaType+`","formatVersion":1,"repositories":"nope"}`), "have.json")
	if err == nil || errors.Is(err, inventory.ErrNotInventory) {
		t.Errorf("Parse of an inventory with a clashing field: %v; want an error, not ErrNotInventory", err)
	}
	_, err = inventory.Parse([]byte(`{"mediaType":"`+inventory.MediaType+`","formatVersion":1,"repositories":[`), "have.json")
	if err == nil || errors.Is(err, inventory.ErrNotInventory) {
		t.Errorf("Parse of an inventory cut short: %v; want an error, not ErrNotInventory", err)
	}
}
