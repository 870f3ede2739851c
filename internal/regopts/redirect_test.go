package regopts

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"

	"github.com/ferry-dev/ferry/internal/registry"
)

// TestExplainStorageRefusingARedirectedDownload: a registry that sends
// blob downloads on to its storage (a signed URL, as S3 or GCS behind a
// registry) whose storage refuses one (an expired signature) is not a
// registry refusing credentials: the error names the registry that
// redirected and says its storage refused, without advice about
// credentials, which would change nothing.
func TestExplainStorageRefusingARedirectedDownload(t *testing.T) {
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(http.StatusForbidden)
		_, _ = io.WriteString(w, `<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>`)
	}))
	t.Cleanup(storage.Close)
	storageHost := strings.TrimPrefix(storage.URL, "http://")
	f := &faults{next: quietRegistry(), match: func(r *http.Request) bool {
		return r.Method == http.MethodGet && strings.Contains(r.URL.Path, "/blobs/sha256:")
	}, inject: func(_ int, w http.ResponseWriter, r *http.Request) bool {
		http.Redirect(w, r, storage.URL+"/bucket/blob?X-Amz-Signature=secret", http.StatusTemporaryRedirect)
		return true
	}}
	host := serve(t, f)
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref := host + "/team/app:v1"
	o := fast(1)
	r, err := name.ParseReference(ref, o.NameOptions()...)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	d, err := layers[0].Digest()
	if err != nil {
		t.Fatal(err)
	}
	f.arm()

	copts, err := o.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	repo, err := registry.New(copts).Repo(ctx, r.Context(), registry.Access{})
	if err != nil {
		t.Fatal(err)
	}
	rc, err := repo.GetBlob(ctx, d)
	if err == nil {
		rc.Close()
		t.Fatal("download from a storage answering 403 succeeded")
	}
	msg := (Options{}).Explain(err, ref).Error()
	for _, want := range []string{"registry " + host + " redirected the download", "to its storage " + storageHost + ", which refused it"} {
		if !strings.Contains(msg, want) {
			t.Errorf("Explain = %q, missing %q", msg, want)
		}
	}
	for _, not := range []string{"--registry-username", "docker login", "registry " + storageHost, "secret"} {
		if strings.Contains(msg, not) {
			t.Errorf("Explain = %q, should not say %q", msg, not)
		}
	}
	var te *transport.Error
	if !errors.As((Options{}).Explain(err, ref), &te) || te.StatusCode != http.StatusForbidden {
		t.Errorf("Explain lost the 403 transport.Error: %v", err)
	}
}
