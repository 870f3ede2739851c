package regopts

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

type rawIndex []byte

func (m rawIndex) RawManifest() ([]byte, error)        { return m, nil }
func (m rawIndex) MediaType() (types.MediaType, error) { return types.OCIImageIndex, nil }

// paddedIndex is an OCI index of exactly size bytes.
func paddedIndex(t *testing.T, size int) rawIndex {
	t.Helper()
	empty, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex, Annotations: map[string]string{"pad": ""}})
	b, _ := json.Marshal(v1.IndexManifest{SchemaVersion: 2, MediaType: types.OCIImageIndex,
		Annotations: map[string]string{"pad": strings.Repeat("x", size-len(empty))}})
	if len(b) != size {
		t.Fatalf("index of %d bytes, want %d", len(b), size)
	}
	return b
}

// TestManifestsAboveTheLimitAreRefused (issue 13, item 2):
// go-containerregistry reads up to 100 MiB of a manifest; ferry's
// transport refuses one above MaxManifestSize, from its Content-Length
// when the registry sends one and as soon as it passes the limit when it
// does not. A manifest of exactly MaxManifestSize bytes is read.
func TestManifestsAboveTheLimitAreRefused(t *testing.T) {
	f := &faults{next: quietRegistry(), match: isManifest(http.MethodGet)}
	host := serve(t, f)
	put := func(tag string, m rawIndex) name.Reference {
		ref, err := name.ParseReference(host + "/app:" + tag)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.Put(ref, m); err != nil {
			t.Fatal(err)
		}
		return ref
	}
	atLimit := put("at", paddedIndex(t, MaxManifestSize))
	over := paddedIndex(t, MaxManifestSize+1)
	overRef := put("over", over)
	ropts, err := Options{}.RemoteOptions(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := remote.Get(atLimit, ropts...); err != nil {
		t.Errorf("a manifest of exactly %d bytes: %v", MaxManifestSize, err)
	}

	_, err = remote.Get(overRef, ropts...)
	if want := fmt.Sprintf("declares %d bytes; a manifest may have at most %d", len(over), MaxManifestSize); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "/v2/app/manifests/over") {
		t.Errorf("err = %v, want one naming the manifest and saying %q", err, want)
	}

	// Without a Content-Length (chunked), the read stops past the limit.
	f.inject = func(_ int, w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/over") {
			return false
		}
		w.Header().Set("Content-Type", string(types.OCIImageIndex))
		w.WriteHeader(http.StatusOK)
		for b := bytes.NewReader(over); b.Len() > 0; {
			chunk := make([]byte, 64<<10)
			n, _ := b.Read(chunk)
			w.Write(chunk[:n])
			w.(http.Flusher).Flush()
		}
		return true
	}
	f.arm()
	_, err = remote.Get(overRef, ropts...)
	if err == nil || !strings.Contains(err.Error(), "sends more than that") {
		t.Errorf("err = %v, want the chunked manifest refused", err)
	}
}
